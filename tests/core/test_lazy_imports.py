"""Cheap imports stay cheap: the core modules load no heavy client library until used."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ["torch", "sentence_transformers", "weaviate", "dspy", "langchain_openai", "openai",
         "litellm"]


def _heavy_loaded(code: str) -> str:
    """Run `code` in a fresh interpreter; the heavy libraries it left loaded, comma-joined."""
    report = f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    probe = f"import sys\n{code}{report}"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("heavy:")]
    return line.removeprefix("heavy:")


def test_core_imports_no_heavy_library() -> None:
    code = (
        "import ragloom.core.settings, ragloom.core.llm, ragloom.core.usage, "
        "ragloom.core.logging, ragloom.core.errors, ragloom.core.documents, "
        "ragloom.core.embedders, ragloom.core.retry, ragloom.core.pricing, "
        "ragloom.core.openai_embedder\n"
        "from ragloom.core.llm import LLMGateway\n"
        "from ragloom.core.settings import LLMSettings\n"
        "gateway = LLMGateway(LLMSettings(base_url='http://127.0.0.1:9/v1'))\n"
    )
    assert _heavy_loaded(code) == ""


def test_heavy_libraries_load_when_used() -> None:
    code = (
        "import sys\n"
        "from ragloom.core.llm import LLMGateway\n"
        "from ragloom.core.settings import LLMSettings\n"
        "gateway = LLMGateway(LLMSettings(base_url='http://127.0.0.1:9/v1'))\n"
        "gateway.chat_model(); gateway.dspy_lm()\n"
        "print('langchain_openai' in sys.modules, 'dspy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "True True"


def test_importing_the_packages_loads_no_heavy_library() -> None:
    """`import ragloom.core, graphs` (and the layers between) stay cheap."""
    code = (
        "import ragloom.core, ragloom.tools, ragloom.prompts, ragloom.agents, ragloom.graphs\n"
        "import graphs\n"
    )
    assert _heavy_loaded(code) == ""


def test_the_extractive_assistant_runs_without_dspy_or_torch(tmp_path) -> None:
    """The offline cold path (`ragloom ask`) builds and runs the graph without the LLM stack."""
    code = (
        "from ragloom.core.settings import load_settings\n"
        "from ragloom.graphs.wiring import Wiring\n"
        f"store = {{'path': {str(tmp_path / 's.db')!r}}}\n"
        "settings = load_settings(engine='extractive', store=store,"
        " embedder={'kind': 'hashing', 'dimensions': 64})\n"
        "graph = Wiring(settings).assistant(persist=False)\n"
        "graph.invoke({'question': 'What is a tuple?'})\n"
    )
    assert _heavy_loaded(code) == ""
