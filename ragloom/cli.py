"""The `ragloom` command line. Each command group lives in `ragloom/commands/<area>.py` and
exposes `register(app)`; this module only assembles them, so `ragloom --help` stays fast
(heavy libraries are imported inside the commands)."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("retrieval", "assistant", "threads", "summarize", "compile", "evaluate")

app = typer.Typer(
    name="ragloom",
    help="Agentic RAG over your documents: ingest, search, ask, summarize, compile, eval.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"ragloom.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ragloom.commands.{name}":
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    """Console entry point: ragloom's own errors print as one line (code, message, fix)."""
    import os

    from ragloom.core.errors import RagloomError

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm (via dspy): no fetch
    try:
        app()
    except RagloomError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
