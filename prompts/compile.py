"""The compile runner: optimize one module with a DSPy optimizer, score it, save an artefact.

    estimate = estimate_calls("answerer", train, dev, CompileOptions())   # --dry-run
    report = compile_module("answerer", lm, train, dev, CompileOptions(budget_calls=200))

Every LM call of a run (baseline score, optimization, final score, judge metrics) goes through
`CallBudgetLM`, which counts calls, reports progress and, past `budget_calls`, raises
`BudgetExceededError`. DSPy optimizers swallow some errors, so the runner checks the budget
itself after each stage and keeps the best program it has: the compiled one when optimization
got far enough, else nothing is saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dspy
import structlog

from ragloom.core.errors import BudgetExceededError, ConfigError
from ragloom.core.usage import CallRecord, UsageTracker
from ragloom.prompts.datasets import dataset_hash, split
from ragloom.prompts.metrics import DEFAULT_METRIC, LLM_METRICS, get_metric
from ragloom.prompts.programs import build_program, make_adapter
from ragloom.prompts.registry import Artefact, save_artefact

log = structlog.get_logger(__name__)

Optimizer = Literal["bootstrap", "random-search", "mipro", "gepa"]
OPTIMIZERS: tuple[str, ...] = ("bootstrap", "random-search", "mipro", "gepa")
COMPILABLE = ("answerer", "rewriter", "grader", "map_summarizer", "reduce_summarizer", "router")
CHARS_PER_TOKEN = 4


# ---- counting and capping LM calls -----------------------------------------------------------


class CallBudgetLM(dspy.BaseLM):
    """Wraps a `dspy.BaseLM`: counts every call in a `UsageTracker` (shared by the LM and its
    copies) and refuses the call past the tracker's `max_calls`."""

    def __init__(self, inner: dspy.BaseLM, counter: UsageTracker) -> None:
        super().__init__(model=getattr(inner, "model", "unknown"), cache=False)
        self.inner = inner
        self.counter = counter
        self.kwargs = inner.kwargs
        self.model_type = getattr(inner, "model_type", "chat")

    def _charge(self) -> None:
        self.counter.admit(CallRecord(model=str(self.model), kind="dspy"))

    def __call__(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        self._charge()
        return self.inner(prompt, messages=messages, **kwargs)

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        self._charge()
        return await self.inner.acall(prompt, messages=messages, **kwargs)

    def copy(self, **kwargs: Any) -> CallBudgetLM:
        return CallBudgetLM(self.inner.copy(**kwargs), self.counter)

    @property
    def history(self) -> list[Any]:  # type: ignore[override]
        return getattr(self.inner, "history", [])

    @history.setter
    def history(self, value: list[Any]) -> None:
        pass


# ---- options, estimates, reports --------------------------------------------------------------


@dataclass
class CompileOptions:
    """How to compile: optimizer, metric, budget and optimizer sizes."""

    optimizer: Optimizer = "bootstrap"
    metric: str | None = None
    budget_calls: int | None = None
    max_bootstrapped_demos: int = 3
    max_labeled_demos: int = 3
    num_candidates: int = 4
    num_trials: int | None = None
    gepa_metric_calls: int | None = None
    dev_fraction: float = 0.3
    num_threads: int = 1
    save_ties: bool = False

    def metric_name(self, module: str) -> str:
        return self.metric or DEFAULT_METRIC[module]


@dataclass
class CallEstimate:
    """Expected LM calls and tokens of a run; `calls_max` when every bootstrap attempt fails."""

    calls: int
    calls_max: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    approximate: bool
    stages: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class EvalResult:
    """A devset score (mean metric, 0..1) with the per-example scores."""

    score: float
    scores: list[float]
    errors: int = 0


@dataclass
class CompileReport:
    """What a compile run did."""

    module: str
    optimizer: str
    metric: str
    score_before: float | None
    score_after: float | None
    calls: int
    budget_exhausted: bool
    trainset_size: int
    devset_size: int
    artefact: Artefact | None = None
    program: Any = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in {"artefact", "program"}}
        data["artefact"] = str(self.artefact.path) if self.artefact else None
        return data


def _tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def _prompt_tokens(program: Any, example: Any, demos: Sequence[Any]) -> int:
    (_, predictor), *_ = program.named_predictors()
    messages = make_adapter().format(predictor.signature, list(demos), dict(example.inputs()))
    return sum(_tokens(str(m.get("content", ""))) for m in messages)


def _output_tokens(program: Any, example: Any) -> int:
    (_, predictor), *_ = program.named_predictors()
    names = list(predictor.signature.output_fields)
    text = " ".join(str(example.get(n, "")) for n in names) or "x" * 200
    return _tokens(text) + 8 * (len(names) + 1)


def _mean_int(values: Sequence[int]) -> int:
    return int(sum(values) / len(values)) if values else 0


def _stage_calls(
    options: CompileOptions, n_train: int, n_dev: int, judge: int
) -> tuple[dict[str, int], int, bool]:
    """Calls per stage (expected), the worst case, and whether the figures are approximate."""
    per_example = 1 + judge
    boot_expected = min(n_train, options.max_bootstrapped_demos) * per_example
    boot_max = n_train * per_example
    stages = {"score_before": n_dev * per_example, "score_after": n_dev * per_example}
    if options.optimizer == "bootstrap":
        stages["bootstrap"] = boot_expected
        return stages, sum(stages.values()) - boot_expected + boot_max, False
    if options.optimizer == "random-search":
        n = options.num_candidates
        stages["candidate_bootstraps"] = (n + 1) * boot_expected
        stages["candidate_scores"] = (n + 3) * n_dev * per_example
        worst = sum(stages.values()) + (n + 1) * (boot_max - boot_expected)
        return stages, worst, False
    if options.optimizer == "mipro":
        n = options.num_candidates
        trials = options.num_trials or max(int(2 * math.log2(max(n, 2))), int(1.5 * n))
        stages["demo_bootstraps"] = n * boot_expected
        stages["instruction_proposals"] = n + 3 + math.ceil(n_train / 10)
        stages["trials"] = (trials + 1) * n_dev * per_example
        return stages, int(sum(stages.values()) * 1.5), True
    metric_calls = options.gepa_metric_calls or 4 * (n_train + n_dev)
    stages["rollouts"] = metric_calls * per_example
    stages["reflections"] = math.ceil(metric_calls / 3)
    return stages, int(sum(stages.values()) * 1.5), True


def estimate_calls(
    module: str,
    trainset: Sequence[Any],
    devset: Sequence[Any],
    options: CompileOptions,
    *,
    model: str = "",
) -> CallEstimate:
    """Estimate a run's LM calls, tokens and (when `model`'s price is known) cost, by formatting
    real prompts for a sample of examples."""
    program = build_program(module)
    judge = 1 if options.metric_name(module) in LLM_METRICS else 0
    stages, worst, approximate = _stage_calls(options, len(trainset), len(devset), judge)
    sample = list(devset[:5]) or list(trainset[:5])
    demos = list(trainset[: options.max_labeled_demos])
    bare = _mean_int([_prompt_tokens(program, ex, []) for ex in sample])
    with_demos = _mean_int([_prompt_tokens(program, ex, demos) for ex in sample])
    out = _mean_int([_output_tokens(program, ex) for ex in sample])
    calls = sum(stages.values())
    bare_calls = stages["score_before"]
    tokens_in = bare_calls * bare + (calls - bare_calls) * with_demos
    tokens_out = calls * out
    return CallEstimate(
        calls=calls,
        calls_max=worst,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=_cost(model, tokens_in, tokens_out),
        approximate=approximate,
        stages=stages,
    )


def _cost(model: str, tokens_in: int, tokens_out: int) -> float | None:
    if not model:
        return None
    try:
        from ragloom.core.pricing import cost_usd
    except ImportError:
        return None
    return cost_usd(model, tokens_in, tokens_out)


# ---- evaluation -------------------------------------------------------------------------------


def evaluate_program(
    program: Any,
    devset: Sequence[Any],
    metric: Callable[..., Any],
    lm: dspy.BaseLM,
    *,
    num_threads: int = 1,
) -> EvalResult:
    """Score `program` on `devset` with `dspy.Evaluate` (the parity reference: the graph must
    score the same with the same replies). A failed example scores 0."""
    evaluate = dspy.Evaluate(
        devset=list(devset),
        metric=metric,
        num_threads=num_threads,
        display_progress=False,
        display_table=False,
        max_errors=len(devset) + 1,
        provide_traceback=False,
    )
    with dspy.context(lm=lm, adapter=make_adapter()):
        result = evaluate(program)
    scores = [float(score or 0.0) for _, _, score in result.results]
    errors = sum(1 for _, pred, _ in result.results if not pred)
    mean = sum(scores) / len(scores) if scores else 0.0
    return EvalResult(score=mean, scores=scores, errors=errors)


# ---- optimizers -------------------------------------------------------------------------------


def _gepa_metric(metric: Callable[..., Any]) -> Callable[..., Any]:
    def gepa_metric(
        gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> float:
        return float(metric(gold, pred, None))

    return gepa_metric


def _optimize(
    options: CompileOptions,
    student: Any,
    trainset: list[Any],
    devset: list[Any],
    metric: Callable[..., Any],
    lm: CallBudgetLM,
) -> Any:
    from dspy import teleprompt

    max_errors = len(trainset) + len(devset) + 10
    if options.optimizer == "bootstrap":
        optimizer = teleprompt.BootstrapFewShot(
            metric=metric,
            max_bootstrapped_demos=options.max_bootstrapped_demos,
            max_labeled_demos=options.max_labeled_demos,
            max_errors=max_errors,
        )
        return optimizer.compile(student, trainset=trainset)
    if options.optimizer == "random-search":
        return _random_search(options, student, trainset, devset, metric, lm, max_errors)
    if options.optimizer == "mipro":
        n = options.num_candidates
        trials = options.num_trials or max(int(2 * math.log2(max(n, 2))), int(1.5 * n))
        optimizer = teleprompt.MIPROv2(
            metric=metric,
            auto=None,
            num_candidates=n,
            max_bootstrapped_demos=options.max_bootstrapped_demos,
            max_labeled_demos=options.max_labeled_demos,
            num_threads=options.num_threads,
            max_errors=max_errors,
        )
        return optimizer.compile(
            student, trainset=trainset, valset=devset, num_trials=trials, minibatch=False
        )
    optimizer = teleprompt.GEPA(
        metric=_gepa_metric(metric),
        max_metric_calls=options.gepa_metric_calls or 4 * (len(trainset) + len(devset)),
        reflection_lm=lm,
        num_threads=options.num_threads,
    )
    return optimizer.compile(student, trainset=trainset, valset=devset)


def _random_search(
    options: CompileOptions,
    student: Any,
    trainset: list[Any],
    devset: list[Any],
    metric: Callable[..., Any],
    lm: CallBudgetLM,
    max_errors: int,
) -> Any:
    """BootstrapFewShotWithRandomSearch one candidate at a time, so a budget stop keeps the
    best candidate scored so far."""
    from dspy.teleprompt import BootstrapFewShotWithRandomSearch

    best: tuple[float, Any] | None = None
    for seed in range(-3, options.num_candidates):
        if lm.counter.exhausted:
            break
        optimizer = BootstrapFewShotWithRandomSearch(
            metric=metric,
            max_bootstrapped_demos=options.max_bootstrapped_demos,
            max_labeled_demos=options.max_labeled_demos,
            num_candidate_programs=options.num_candidates,
            num_threads=options.num_threads,
            max_errors=max_errors,
        )
        try:
            program = optimizer.compile(student, trainset=trainset, valset=devset, restrict=[seed])
        except BudgetExceededError:
            break
        if lm.counter.exhausted:
            break  # this candidate's score is incomplete
        subscores = [float(x or 0.0) for x in program.candidate_programs[0]["subscores"]]
        score = sum(subscores) / len(subscores) if subscores else 0.0
        if best is None or score > best[0]:
            best = (score, program)
    if best is None:
        raise BudgetExceededError("calls", lm.counter.calls, lm.counter.max_calls or 0)
    best[1].ragloom_dev_score = best[0]  # scored on the devset: no need to score it again
    return best[1]


def check_optimizer(optimizer: str) -> None:
    """ConfigError for an unknown optimizer or one whose optional dependency is missing, before
    any LM call is spent."""
    import importlib.util

    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if optimizer == "mipro" and importlib.util.find_spec("optuna") is None:
        raise ConfigError(
            "the mipro optimizer needs the optional package optuna",
            fix="pip install 'ragloom[compile]', or use --optimizer random-search",
        )


# ---- the run -----------------------------------------------------------------------------------


def compile_module(
    module: str,
    lm: dspy.BaseLM,
    trainset: Sequence[Any],
    devset: Sequence[Any] | None = None,
    *,
    options: CompileOptions | None = None,
    out_dir: Path | str | None = None,
    model: str = "",
    on_call: Callable[[int], None] | None = None,
    save: bool = True,
    judges: Mapping[str, Any] | None = None,
) -> CompileReport:
    """Score the fresh program on the devset, optimize it, score it again and save an artefact
    when it beats the baseline (or, with `save_ties`, equals it; or when the budget ran out
    after optimization, keeping the best program so far). LLM metrics use `judges` (the
    registry's judge programs, see `ragloom.prompts.metrics.JUDGE_MODULES`) when given."""
    options = options or CompileOptions()
    if module not in COMPILABLE:
        raise ConfigError(f"cannot compile {module!r}; compilable: {', '.join(COMPILABLE)}")
    check_optimizer(options.optimizer)
    model = model or str(getattr(lm, "model", ""))
    train, dev = _sets(trainset, devset, options)
    metric_name = options.metric_name(module)
    metric = get_metric(metric_name, judges)
    counter = UsageTracker(max_calls=options.budget_calls, on_call=on_call, keep_recent=0)
    budget_lm = CallBudgetLM(lm, counter)
    report = CompileReport(
        module=module,
        optimizer=options.optimizer,
        metric=metric_name,
        score_before=None,
        score_after=None,
        calls=0,
        budget_exhausted=False,
        trainset_size=len(train),
        devset_size=len(dev),
    )
    try:
        _run(report, module, budget_lm, train, dev, metric, options)
    except BudgetExceededError:
        counter.exhausted = True
    report.calls = counter.calls
    report.budget_exhausted = counter.exhausted
    log.info("compile finished", **report.to_dict())
    if save and _worth_saving(report, options.save_ties):
        report.artefact = save_artefact(
            report.program, module, _meta(report, model, train, dev), out_dir
        )
    elif report.program is not None and not report.note:
        report.note = "not saved: the compiled program did not beat the baseline on the devset"
    return report


def _sets(
    trainset: Sequence[Any], devset: Sequence[Any] | None, options: CompileOptions
) -> tuple[list[Any], list[Any]]:
    if devset is None:
        train, dev = split(trainset, options.dev_fraction)
    else:
        train, dev = list(trainset), list(devset)
    if not train or not dev:
        raise ConfigError(
            f"need a non-empty trainset and devset (got {len(train)} train, {len(dev)} dev)",
            fix="pass --devset or a larger --trainset",
        )
    return train, dev


def _run(
    report: CompileReport,
    module: str,
    lm: CallBudgetLM,
    train: list[Any],
    dev: list[Any],
    metric: Callable[..., Any],
    options: CompileOptions,
) -> None:
    student = build_program(module)
    report.score_before = _score(student, dev, metric, lm, options)
    with dspy.context(lm=lm, adapter=make_adapter()):
        compiled = _optimize(options, student, train, dev, metric, lm)
    report.program = compiled
    if lm.counter.exhausted:
        report.score_after = getattr(compiled, "ragloom_dev_score", None)
        report.note = "budget reached during optimization; kept the best program so far"
        return
    report.score_after = _score(compiled, dev, metric, lm, options)


def _score(
    program: Any,
    dev: list[Any],
    metric: Callable[..., Any],
    lm: CallBudgetLM,
    options: CompileOptions,
) -> float:
    result = evaluate_program(program, dev, metric, lm, num_threads=options.num_threads)
    if lm.counter.exhausted:
        raise BudgetExceededError("calls", lm.counter.calls, lm.counter.max_calls or 0)
    return result.score


def _worth_saving(report: CompileReport, save_ties: bool) -> bool:
    if report.program is None:
        return False
    if report.score_after is None:
        return report.budget_exhausted
    if report.score_before is None:
        return True
    gain = report.score_after - report.score_before
    return gain > 0 or (save_ties and gain == 0)


def _meta(report: CompileReport, model: str, train: list[Any], dev: list[Any]) -> dict[str, Any]:
    return {
        "model": model,
        "optimizer": report.optimizer,
        "metric": report.metric,
        "trainset_hash": dataset_hash(train),
        "devset_hash": dataset_hash(dev),
        "trainset_size": len(train),
        "devset_size": len(dev),
        "score_before": report.score_before,
        "score_after": report.score_after,
        "calls": report.calls,
        "budget_exhausted": report.budget_exhausted,
    }
