"""The composition root: the only code that turns `Settings` into objects.

One `Wiring` makes, on first use, one LLM gateway, one embedder (the store's, when a store is
given), one store, one checkpointer and the roles each graph uses (DSPy programs load once and
are shared by both graphs), and closes what it opened. `build_assistant()`, `build_summarizer()`,
the CLI, the server, eval, compile and the examples all build through it, so the same question
over the same store gets the same answer by every path.

    with Wiring(settings) as wiring:
        assistant = wiring.assistant()
        assistant.invoke({"question": "..."}, {"configurable": {"thread_id": "t1"}})
"""

from __future__ import annotations

import functools
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ragloom.agents.factory import (
    AssistantRoles,
    SummarizerRoles,
    dspy_assistant_roles,
    dspy_summarizer_roles,
    extractive_assistant_roles,
    extractive_summarizer_roles,
)
from ragloom.core.settings import Engine, Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    from ragloom.core.embedders import Embedder
    from ragloom.core.llm import LLMGateway
    from ragloom.graphs.assistant_state import (
        AssistantContext,
        AssistantInput,
        AssistantOutput,
        AssistantState,
    )
    from ragloom.graphs.summarizer_state import SummarizerInput, SummarizerOutput, SummarizerState
    from ragloom.prompts.registry import PromptRegistry
    from ragloom.tools.rerank import Reranker
    from ragloom.tools.stores.base import ChunkStore


class Wiring:
    """Builds (lazily, once each) and owns the objects a ragloom app runs on.

    Pass `store`, `embedder`, `llm` (an `LLMGateway` or any LangChain chat model) or
    `checkpointer` to use your own; what you pass is never closed by `close()`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: ChunkStore | None = None,
        embedder: Embedder | None = None,
        llm: LLMGateway | BaseChatModel | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._given_store = store
        self._given_embedder = embedder
        self._llm = llm
        self._given_checkpointer = checkpointer
        self._clock = clock
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    # -- the engine and its model -------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """`openai` when a model is given or configured, else `extractive`."""
        return "openai" if self._llm is not None else self.settings.resolved_engine

    @cached_property
    def gateway(self) -> LLMGateway | None:
        """The one gateway of this wiring: the one given, or one from settings when a model is
        configured (or the OpenAI embedder needs it); None otherwise."""
        from ragloom.core.llm import LLMGateway

        if isinstance(self._llm, LLMGateway):
            return self._llm
        if self._llm is None and (
            self.engine == "openai" or self.settings.embedder.kind == "openai"
        ):
            return LLMGateway(self.settings.llm)
        return None

    @cached_property
    def dspy_lm(self) -> Any:
        """The DSPy LM the `openai` engine's roles call (over the gateway or the given model)."""
        from ragloom.core.llm import dspy_lm_for

        return dspy_lm_for(self._llm if self._llm is not None else self.gateway, self.settings.llm)

    # -- retrieval and persistence ------------------------------------------------------------

    @cached_property
    def embedder(self) -> Embedder:
        """The given embedder, else the given store's, else one from settings."""
        if self._given_embedder is not None:
            return self._given_embedder
        store_embedder = getattr(self._given_store, "embedder", None)
        if store_embedder is not None:
            return store_embedder  # type: ignore[no-any-return]
        from ragloom.core.embedders import build_embedder

        return build_embedder(self.settings, gateway=self.gateway)

    @cached_property
    def store(self) -> ChunkStore:
        """The given store, else the one settings name (opened here, closed by `close()`)."""
        if self._given_store is not None:
            return self._given_store
        from ragloom.tools.stores import build_store

        return self._own(build_store(self.settings, self.embedder))

    @cached_property
    def checkpointer(self) -> BaseCheckpointSaver[str]:
        """The given checkpointer, else the one settings name (closed by `close()`)."""
        if self._given_checkpointer is not None:
            return self._given_checkpointer
        from ragloom.graphs.checkpointers import build_checkpointer

        return self._own(build_checkpointer(self.settings.checkpointer))

    # -- roles ----------------------------------------------------------------------------------

    @cached_property
    def _registry(self) -> PromptRegistry:
        from ragloom.prompts.registry import PromptRegistry

        return PromptRegistry.from_settings(self.settings.prompts)

    @cached_property
    def _dspy_roles(self) -> dict[str, Any]:
        from ragloom.agents.dspy_modules import build_dspy_roles

        return build_dspy_roles(self.dspy_lm, registry=self._registry)

    @cached_property
    def reranker(self) -> Reranker | None:
        """The reranker `settings.retrieval.reranker` picks, run after fusion (None: keep the
        fused order)."""
        from ragloom.tools.rerank import NoReranker, build_reranker

        def llm() -> Reranker:
            from ragloom.agents.rerank import LLMReranker

            return LLMReranker(self.dspy_lm, self._registry.load("reranker"))

        choice = self.settings.retrieval.reranker
        chosen = build_reranker(
            self.settings,
            embedder=self.embedder if choice == "semantic" else None,
            store=self.store,
            llm=llm if self.settings.resolved_engine == "openai" else None,
        )
        return None if isinstance(chosen, NoReranker) else chosen

    @cached_property
    def assistant_roles(self) -> AssistantRoles:
        """The assistant's roles for the engine."""
        if self.engine == "extractive":
            return extractive_assistant_roles(self.embedder)
        return dspy_assistant_roles(self._dspy_roles, model=str(self.dspy_lm.model))

    @cached_property
    def summarizer_roles(self) -> SummarizerRoles:
        """The summarizer's roles for the engine."""
        if self.engine == "extractive":
            return extractive_summarizer_roles()
        return dspy_summarizer_roles(self._dspy_roles)

    # -- graphs ---------------------------------------------------------------------------------

    def assistant(
        self, *, persist: bool = True, tenant: str | None = None
    ) -> CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantOutput]:
        """The assistant graph over this wiring's store and roles; with `persist`, threads are
        kept by the checkpointer. `tenant` defaults to `settings.store.tenant` (a run may name
        another with `context={"tenant": ...}`)."""
        from ragloom.graphs.assistant import build_assistant_graph
        from ragloom.graphs.assistant_state import AssistantDeps

        deps = AssistantDeps(
            store=self.store,
            roles=self.assistant_roles,
            budget=self.settings.budget,
            retrieval=self.settings.retrieval,
            summarizer=self.summarizer(),
            tenant=tenant if tenant is not None else self.settings.store.tenant,
            review=tuple(self.settings.assistant.review),
            max_messages=self.settings.assistant.max_messages,
            history_turns=self.settings.assistant.history_turns,
            price=_pricer(self.assistant_roles.model),
            speculative=self.engine == "openai",
            reranker=self.reranker,
        )
        if self._clock is not None:
            deps.clock = self._clock
        return build_assistant_graph(deps, checkpointer=self.checkpointer if persist else None)

    def summarizer(
        self,
        *,
        persist: bool = False,
        token_budget: int | None = None,
        chunk_tokens: int = 512,
        chunk_overlap: int = 0,
        max_concurrency: int = 8,
    ) -> CompiledStateGraph[SummarizerState, None, SummarizerInput, SummarizerOutput]:
        """The summarizer graph; with `persist`, runs are resumable by `thread_id`."""
        from ragloom.graphs.summarizer import DEFAULT_BUDGET, build_summarizer_graph
        from ragloom.graphs.summarizer_state import SummarizerDeps

        roles = self.summarizer_roles
        deps = SummarizerDeps(
            roles=roles,
            token_budget=token_budget or DEFAULT_BUDGET.get(roles.engine, DEFAULT_BUDGET["openai"]),
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
        )
        if self._clock is not None:
            deps.clock = self._clock
        graph = build_summarizer_graph(deps, checkpointer=self.checkpointer if persist else None)
        return graph.with_config(max_concurrency=max_concurrency, recursion_limit=64)  # type: ignore[return-value]

    # -- lifetime ---------------------------------------------------------------------------------

    def _own(self, thing: Any) -> Any:
        self._opened.append(thing)
        return thing

    def close(self) -> None:
        """Close what this wiring opened (store, checkpointer connection), newest first."""
        with self._lock:
            opened, self._opened = self._opened, []
        for thing in reversed(opened):
            _close(thing)

    def __enter__(self) -> Wiring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(thing: Any) -> None:
    """Close a store or a checkpointer (LangGraph's savers keep their connection in `conn`)."""
    closer = getattr(thing, "close", None)
    if callable(closer):
        closer()
        return
    conn = getattr(thing, "conn", None)
    if conn is not None and callable(getattr(conn, "close", None)):
        conn.close()


def _pricer(model: str | None) -> Callable[[int, int], float | None] | None:
    """Token price of the roles' model (None without a model, or a model without a price)."""
    if model is None:
        return None
    from ragloom.core.pricing import cost_usd

    return functools.partial(cost_usd, model)


@functools.cache
def platform_wiring() -> Wiring:
    """The process-wide wiring for LangGraph's server (`langgraph.json` factories): built once,
    from settings, never closed before the process ends."""
    return Wiring()
