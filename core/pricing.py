"""A small price table (USD per million tokens) keyed by model; unknown models cost None.

Prices are list prices at the time of writing; override or extend `PRICES` for your contract.
"""

from __future__ import annotations

# model prefix -> (input $/1M tokens, output $/1M tokens); longest matching prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}


def price_for(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for `model`, or None when unknown."""
    name = model.split("/")[-1].lower()
    matches = [prefix for prefix in PRICES if name == prefix or name.startswith(prefix + "-")]
    if not matches:
        return None
    return PRICES[max(matches, key=len)]


def cost_usd(model: str, tokens_in: int | None, tokens_out: int | None) -> float | None:
    """Cost of one call in USD, or None when the model's price (or the usage) is unknown."""
    price = price_for(model)
    if price is None or tokens_in is None:
        return None
    total = (tokens_in * price[0] + (tokens_out or 0) * price[1]) / 1_000_000
    return round(total, 8)
