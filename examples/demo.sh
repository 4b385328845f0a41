#!/usr/bin/env bash
# The offline demo (`make demo`): ingest ragloom's own docs, ask a question, summarize a document.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export RAGLOOM_STORE__PATH=${RAGLOOM_STORE__PATH:-.ragloom/demo/store.db}
export RAGLOOM_CHECKPOINTER__PATH=${RAGLOOM_CHECKPOINTER__PATH:-.ragloom/demo/threads.db}
export RAGLOOM_LOG_LEVEL=${RAGLOOM_LOG_LEVEL:-WARNING}

echo "== 1. ingest README.md and docs/"
"$BIN/ragloom" ingest README.md docs/
echo
echo "== 2. ask a question"
"$BIN/ragloom" ask "How does ragloom keep conversation threads across restarts?" --thread demo
echo
echo "== 3. summarize a document"
"$BIN/python" examples/doc_summarizer.py docs/concepts.md --length short
