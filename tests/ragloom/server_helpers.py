"""Shared pieces of the server tests: two tenants' keys and documents, a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ragloom.core.settings import Settings
from ragloom.core.testing import make_test_settings

KEY_A = "key-tenant-acme-0123456789abcdef"
KEY_B = "key-tenant-beta-fedcba9876543210"
ACME_DOC = (
    "# Octal\n\nPython writes octal literals with the 0o prefix, for example 0o17 equals 15.\n\n"
    "## Hex\n\nHexadecimal literals use the 0x prefix, like 0xff which equals 255.\n"
)
BETA_DOC = (
    "# Zebras\n\nZebras migrate across the Serengeti every year following the rains.\n\n"
    "## Stripes\n\nEach zebra has a unique stripe pattern, like a fingerprint.\n"
)


def server_settings(tmp_path: Path, *, keys: bool = True, **overrides: Any) -> Settings:
    """Extractive engine, hashing embedder, embedded store and SQLite threads under tmp_path."""
    server: dict[str, Any] = dict(overrides.pop("server", {}))
    if keys:
        server["api_keys"] = [{"key": KEY_A, "tenant": "acme"}, {"key": KEY_B, "tenant": "beta"}]
    return make_test_settings(tmp_path, server=server, **overrides)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(client: Any, key: str, name: str, text: str) -> Any:
    """POST one file to /v1/ingest as multipart/form-data."""
    return client.post("/v1/ingest", headers=auth(key),
                       files={"file": (name, text.encode(), "text/markdown")})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve `app` with a real uvicorn server on a free loopback port (in a thread)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=60)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(base: str, timeout: float, process: Any = None) -> None:
    """Wait until `base`/healthz answers (fail early if `process` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server at {base} not up after {timeout} s")
