"""Use ragloom from Python: ingest a folder, then ask questions on a thread.

    python examples/quickstart.py [FOLDER] ["question"]

Runs offline with the extractive engine unless a key or base URL is configured.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ragloom.core.settings import load_settings
from ragloom.graphs.wiring import Wiring
from ragloom.runtime import setup
from ragloom.tools.ingest.pipeline import ingest_paths


def main() -> None:
    default = Path(__file__).resolve().parents[1] / "docs"
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    question = sys.argv[2] if len(sys.argv) > 2 else "What does the grounding check do?"
    settings = setup(load_settings())
    with Wiring(settings) as wiring:  # one store, embedder, checkpointer; closed on exit
        report = ingest_paths([folder], wiring.store, root=folder, progress=False)
        print(f"ingested {report.ingested} files ({report.skipped_unchanged} unchanged)")
        assistant = wiring.assistant()
        result = assistant.invoke(
            {"messages": [("user", question)]}, {"configurable": {"thread_id": "quickstart"}}
        )
    print(result["answer"])
    for citation in result["citations"]:
        print(" -", citation["source"], " > ".join(citation["heading_path"]))
    print(f"engine: {result['engine']}")


if __name__ == "__main__":
    main()
