"""The node kit: one way to write a graph node that runs under `invoke` and `ainvoke`.

A node body is a plain function `(state, deps, runtime) -> update`. When it needs a role (an
LLM-backed or extractive agent, a store, a subgraph), it returns `call(role.method, *args)
.then(next_step)` instead: the kit makes the call with the sync method under `invoke` and its
async twin (`a` + the name, LangChain's convention) under `ainvoke`, then continues with
`next_step(result)`, which returns the update (or another call). So each node's logic is written
once, and reads which role it calls.

Role calls run tagged `nostream`, so a role's raw LLM output (DSPy's `[[ ## field ## ]]` wire
format, internal passage labels) never reaches `stream_mode="messages"`; a call that should
stream to the user names a listener (`call(...).listening(factory)`): a LangChain callback
handler that sees the raw tokens and re-emits clean ones (see `ragloom.graphs.streaming`).
`call_together(a, b).then(step)` makes calls side by side (one LLM round trip for both).

The kit also binds log keys (`node`, `run_id`, `thread_id`), meters LLM calls and tokens per
node (`usage_log`), and is built on LangGraph's and LangChain's public API only: a small
`Runnable` with a sync and an async function per node (LangGraph's task traces the node's run,
so the node adds none), `get_runtime()` for the run context, `set_config_context` for the
hidden role calls.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import structlog
from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    patch_config,
    set_config_context,
)
from langchain_core.runnables.utils import coro_with_context
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime, get_runtime

from ragloom.core.usage import metered, only_usage_callbacks

DepsT = TypeVar("DepsT")
Update = dict[str, Any]


Listener = Callable[[CallbackManager], BaseCallbackHandler]


@dataclass(frozen=True)
class RoleCall:
    """A call a node body asks the kit to make: `method(*args)`, then `then(result)`.

    `listen(visible)`, when given, makes a callback handler that sees the call's raw LLM tokens;
    `visible` is the node's own callback manager (not tagged `nostream`), to emit clean ones.
    It is made only when the run has a listener of its own (a `messages` stream, a tracer):
    otherwise nobody would see the tokens, and the call need not stream.
    `done(result)` runs as soon as this call returns (before calls beside it finish)."""

    method: Callable[..., Any]
    args: tuple[Any, ...]
    then: Callable[[Any], Step]
    listen: Listener | None = None
    done: Callable[[Any], None] | None = None

    def run(self, config: RunnableConfig) -> Any:
        child = self._hidden(config, get_callback_manager_for_config(config))
        with set_config_context(child) as context:
            return self._done(context.run(self.method, *self.args))

    async def arun(self, config: RunnableConfig) -> Any:
        twin = _async_twin(self.method)
        if twin is None:  # a sync-only dependency (e.g. a store search): run it as is
            return self._done(self.method(*self.args))
        child = self._hidden(config, get_async_callback_manager_for_config(config))
        with set_config_context(child) as context:
            return self._done(await coro_with_context(twin(*self.args), context))

    def _done(self, result: Any) -> Any:
        if self.done is not None:
            self.done(result)
        return result

    def _hidden(self, config: RunnableConfig, manager: Any) -> RunnableConfig:
        if self.listen is not None:
            visible = get_callback_manager_for_config(config)
            if not only_usage_callbacks(visible.handlers):  # someone streams or traces the run
                manager.add_handler(self.listen(visible), inherit=True)
        manager.add_tags([TAG_NOSTREAM])
        return patch_config(config, callbacks=manager)


@dataclass(frozen=True)
class Together:
    """Role calls made at once (async tasks under ainvoke, a few threads under invoke); `then`
    receives their results as a list, in order."""

    parts: tuple[RoleCall, ...]
    then: Callable[[list[Any]], Step]

    def run(self, config: RunnableConfig) -> list[Any]:
        with ThreadPoolExecutor(max_workers=len(self.parts)) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, part.run, config)
                for part in self.parts
            ]
            return [f.result() for f in futures]

    async def arun(self, config: RunnableConfig) -> list[Any]:
        return list(await asyncio.gather(*(part.arun(config) for part in self.parts)))


Step = dict[str, Any] | RoleCall | Together


@dataclass(frozen=True)
class _Pending:
    method: Callable[..., Any]
    args: tuple[Any, ...]
    listen: Listener | None = None
    done: Callable[[Any], None] | None = None

    def listening(self, listen: Listener) -> _Pending:
        """Stream this call's tokens through `listen(visible)` (see `RoleCall`)."""
        return replace(self, listen=listen)

    def when_done(self, done: Callable[[Any], None]) -> _Pending:
        """Run `done(result)` as soon as this call returns."""
        return replace(self, done=done)

    def then(self, step: Callable[[Any], Step]) -> RoleCall:
        return RoleCall(self.method, self.args, step, self.listen, self.done)


@dataclass(frozen=True)
class _PendingGroup:
    calls: tuple[_Pending, ...]

    def then(self, step: Callable[[list[Any]], Step]) -> Together:
        return Together(tuple(c.then(_same) for c in self.calls), step)


def _same(result: Any) -> Any:
    return result


def call(method: Callable[..., Any], *args: Any) -> _Pending:
    """Ask the kit to call `method(*args)` (its `a`-twin under ainvoke); chain `.then(step)`."""
    return _Pending(method, args)


def call_together(*calls: _Pending) -> _PendingGroup:
    """Several role calls at once; `.then(step)` receives their results as a list."""
    return _PendingGroup(calls)


def _async_twin(method: Callable[..., Any]) -> Callable[..., Awaitable[Any]] | None:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    twin = getattr(owner, f"a{name}", None) if owner is not None else None
    return twin if callable(twin) else None


Body = Callable[[Any, DepsT, Runtime[Any]], Step]
Finish = Callable[[Any, Update], Update]


@dataclass(frozen=True)
class NodeKit(Generic[DepsT]):
    """Builds the nodes of one graph over its bound dependencies.

    `finish(state, update)` runs on every node's update (e.g. the assistant counts steps).
    """

    deps: DepsT
    finish: Finish | None = None

    def node(self, name: str, body: Body[DepsT]) -> Runnable[Any, Update]:
        """A LangGraph node (sync and async) running `body` with log keys and usage metering."""

        def run(state: Any, config: RunnableConfig) -> Update:
            with _log_scope(name, state, config), metered(name) as record:
                out = body(state, self.deps, get_runtime())
                while isinstance(out, (RoleCall, Together)):
                    out = out.then(out.run(config))
            return self._finish(state, out, record)

        async def arun(state: Any, config: RunnableConfig) -> Update:
            with _log_scope(name, state, config), metered(name) as record:
                out = body(state, self.deps, get_runtime())
                while isinstance(out, (RoleCall, Together)):
                    out = out.then(await out.arun(config))
            return self._finish(state, out, record)

        return _Node(name, body.__doc__, run, arun)

    def _finish(self, state: Any, update: Update, record: dict[str, Any]) -> Update:
        if "usage_log" not in update:
            update["usage_log"] = [record]
        return self.finish(state, update) if self.finish else update


class _Node(Runnable[Any, Update]):
    """A node as LangGraph runs it: the task already traces the node's run (as for a plain
    function node), so this adds no run of its own, unlike a `RunnableLambda`."""

    def __init__(
        self,
        name: str,
        doc: str | None,
        run: Callable[[Any, RunnableConfig], Update],
        arun: Callable[[Any, RunnableConfig], Awaitable[Update]],
    ) -> None:
        self.name = name
        self.__doc__ = doc
        self._run, self._arun = run, arun

    def invoke(self, input: Any, config: RunnableConfig | None = None, **_: Any) -> Update:
        return self._run(input, ensure_config(config))

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **_: Any
    ) -> Update:
        return await self._arun(input, ensure_config(config))


def _log_scope(name: str, state: Any, config: RunnableConfig) -> AbstractContextManager[None]:
    """Bind `node`, `run_id` and `thread_id` to every log line inside a node."""
    run_id = state.get("run_id") if isinstance(state, dict) else None
    thread_id = (config.get("configurable") or {}).get("thread_id")
    return structlog.contextvars.bound_contextvars(node=name, run_id=run_id, thread_id=thread_id)
