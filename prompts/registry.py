"""Compiled prompt artefacts: where they live, which one a module loads, and saving new ones.

Layout: `<compiled_dir>/<module>/<hash>.json` (DSPy JSON state, never pickle) next to
`<hash>.meta.json` (module, signature hash, dspy version, model, optimizer, metric, dataset
hashes, scores, created). `<hash>` is the content hash of the state file.

A module loads the pinned artefact (`settings.prompts.pinned[module]`) or else the newest one
whose signature hash equals the hash of the signature in the code now. An artefact compiled
against another signature is *stale*: loading it would bring back the old instructions, so it
is ignored with a warning that names it. An artefact saved when a compile run's call budget ran
out before its dev score was known is *unscored*: listed, loaded only when pinned.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from ragloom.core.errors import ArtefactError

log = structlog.get_logger(__name__)

DEFAULT_COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
Status = Literal["ok", "stale", "unreadable", "unscored"]


@dataclass(frozen=True)
class Artefact:
    """One compiled program on disk, with its metadata and whether the code still matches."""

    module: str
    hash: str
    path: Path
    meta: Mapping[str, Any] = field(default_factory=dict)
    status: Status = "ok"
    problem: str = ""

    @property
    def meta_path(self) -> Path:
        return self.path.with_name(f"{self.hash}.meta.json")

    @property
    def created(self) -> str:
        return str(self.meta.get("created", ""))

    @property
    def score_before(self) -> float | None:
        return self.meta.get("score_before")

    @property
    def score_after(self) -> float | None:
        return self.meta.get("score_after")

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "hash": self.hash,
            "path": str(self.path),
            "status": self.status,
            "problem": self.problem,
            **{k: v for k, v in self.meta.items() if k not in {"module", "hash"}},
        }


def _meta_of(path: Path) -> dict[str, Any]:
    meta_path = path.with_name(f"{path.stem}.meta.json")
    return dict(json.loads(meta_path.read_text(encoding="utf-8")))


class PromptRegistry:
    """Finds and loads compiled programs; honours `use_compiled` and `pinned`."""

    def __init__(
        self,
        compiled_dir: Path | str | None = None,
        *,
        use_compiled: bool = True,
        pinned: Mapping[str, str] | None = None,
    ) -> None:
        self.compiled_dir = Path(compiled_dir) if compiled_dir else DEFAULT_COMPILED_DIR
        self.use_compiled = use_compiled
        self.pinned = dict(pinned or {})
        self._current: dict[str, str] = {}
        self._warned: set[Path] = set()

    @classmethod
    def from_settings(cls, settings: Any) -> PromptRegistry:
        """From `Settings` or `PromptSettings` (anything with `.prompts` or the three fields)."""
        prompts = getattr(settings, "prompts", settings)
        return cls(prompts.compiled_dir, use_compiled=prompts.use_compiled, pinned=prompts.pinned)

    def current_signature_hash(self, module: str) -> str:
        """Signature hash of `module` as the code defines it (cached per registry)."""
        if module not in self._current:
            from ragloom.prompts.programs import module_signature_hash

            self._current[module] = module_signature_hash(module)
        return self._current[module]

    def artefacts(self, module: str | None = None) -> list[Artefact]:
        """Every artefact (all modules, or one), newest first, each with its status."""
        if not self.compiled_dir.is_dir():
            return []
        dirs = [self.compiled_dir / module] if module else sorted(self.compiled_dir.iterdir())
        found = [a for d in dirs if d.is_dir() for a in self._scan(d)]
        return sorted(found, key=lambda a: (a.created, a.path.stat().st_mtime), reverse=True)

    def _scan(self, directory: Path) -> list[Artefact]:
        from ragloom.prompts.programs import MODULES

        module = directory.name
        result = []
        for path in sorted(directory.glob("*.json")):
            if path.name.endswith(".meta.json"):
                continue
            try:
                meta = _meta_of(path)
            except (OSError, ValueError) as exc:
                result.append(Artefact(module, path.stem, path, {}, "unreadable", str(exc)))
                continue
            if module not in MODULES:
                problem = "unknown module"
                result.append(Artefact(module, path.stem, path, meta, "unreadable", problem))
                continue
            expected = self.current_signature_hash(module)
            found = str(meta.get("signature_hash", ""))
            if found != expected:
                problem = f"signature hash {found or '?'} != current {expected}"
                result.append(Artefact(module, path.stem, path, meta, "stale", problem))
            elif meta.get("budget_exhausted") and meta.get("score_after") is None:
                problem = "the call budget ran out before it was scored; pin it to use it"
                result.append(Artefact(module, path.stem, path, meta, "unscored", problem))
            else:
                result.append(Artefact(module, path.stem, path, meta))
        return result

    def resolve(self, module: str) -> Artefact | None:
        """The artefact `module` should load, or None (none usable, or compiled use disabled).
        Stale or unreadable artefacts are skipped with a warning naming them."""
        if not self.use_compiled:
            return None
        candidates = self.artefacts(module)
        pin = self.pinned.get(module)
        if pin:
            candidates = [a for a in candidates if a.hash.startswith(pin)]
            if not candidates:
                raise ArtefactError(
                    f"pinned artefact {module}/{pin} not found under {self.compiled_dir}"
                )
        for artefact in candidates:
            if artefact.status == "ok" or (pin and artefact.status == "unscored"):
                return artefact
            if artefact.status == "unscored":
                log.info("unscored prompt artefact skipped", artefact=str(artefact.path))
                continue
            if artefact.path in self._warned:
                continue
            self._warned.add(artefact.path)
            log.warning(
                "prompt artefact ignored",
                artefact=str(artefact.path),
                module=module,
                status=artefact.status,
                reason=artefact.problem,
                fix=f"recompile with `ragloom compile {module}` or delete the file",
            )
        return None

    def load(self, module: str) -> Any:
        """A program for `module`: the resolved artefact loaded into a fresh program, or the
        fresh program itself when there is none."""
        from ragloom.prompts.programs import build_program

        program = build_program(module)
        artefact = self.resolve(module)
        if artefact is None:
            return program
        try:
            _load_state(program, artefact.path)
        except Exception as exc:  # a corrupt state file must not take the assistant down
            log.warning("prompt artefact unreadable", artefact=str(artefact.path), error=str(exc))
            return build_program(module)
        log.info("prompt artefact loaded", module=module, artefact=str(artefact.path))
        return program


def _sole_predictor(program: Any) -> Any:
    """The program's only predictor (a `dspy.Predict`), or None when it has several."""
    predictors = list(program.named_predictors())
    return predictors[0][1] if len(predictors) == 1 else None


def _load_state(program: Any, path: Path) -> None:
    """Load an artefact: a single predictor's state (what `save_artefact` writes, loadable by
    a bare `dspy.Predict(Signature).load(path)`) or a whole program's (older artefacts)."""
    state = json.loads(path.read_text(encoding="utf-8"))
    predictor = _sole_predictor(program)
    if predictor is not None and "signature" in state:
        predictor.load_state(state)
    else:
        program.load(str(path))


def load_judges(settings: Any) -> dict[str, Any]:
    """The judge programs the graphs run (compiled when available), keyed `faithfulness` and
    `relevance`: one judge for the grounding check, the eval metric and the compile metric."""
    from ragloom.prompts.metrics import JUDGE_MODULES

    registry = PromptRegistry.from_settings(settings)
    return {kind: registry.load(module) for kind, module in JUDGE_MODULES.items()}


def file_hash(path: Path) -> str:
    """Content hash of a file (12 hex chars), the artefact's name."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def save_artefact(
    program: Any, module: str, meta: Mapping[str, Any], compiled_dir: Path | str | None = None
) -> Artefact:
    """Write `program`'s JSON state and its metadata; returns the new artefact."""
    import dspy

    from ragloom.prompts.programs import module_signature_hash

    target = (Path(compiled_dir) if compiled_dir else DEFAULT_COMPILED_DIR) / module
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".json", dir=target, prefix=".tmp-")
    os.close(fd)
    tmp = Path(tmp_name)
    predictor = _sole_predictor(program)
    (predictor if predictor is not None else program).save(str(tmp), save_program=False)
    digest = file_hash(tmp)
    path = target / f"{digest}.json"
    tmp.replace(path)
    full_meta = {
        "module": module,
        "hash": digest,
        "signature_hash": module_signature_hash(module),
        "dspy_version": dspy.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
    }
    path.with_name(f"{digest}.meta.json").write_text(
        json.dumps(full_meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    log.info("prompt artefact saved", module=module, artefact=str(path))
    return Artefact(module, digest, path, full_meta)
