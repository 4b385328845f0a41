"""`GatewayLM`: a `dspy.BaseLM` that sends DSPy's messages through the gateway's chat model.

Imported lazily by `ragloom.core.llm` (it imports dspy); it imports nothing of the gateway's
(any LangChain chat model will do), so imports go one way. Every DSPy call becomes
`chat.invoke(messages)` / `chat.ainvoke(messages)` on the gateway's `GatewayChatOpenAI`, so
retries, typed errors, the usage record, the log line and the response cache are the same as for a
LangGraph node; and because `invoke` reads the current runnable config, a DSPy module running
inside a LangGraph node streams its tokens to `stream_mode="messages"`.

Why `forward`/`aforward` rather than a DSPy 3.4 engine: a BaseLM subclass is an "unmanaged"
LM in DSPy 3.4 — DSPy adds no retries, no cache and no error wrapping around it, so the gateway's
policy is the only one and our typed errors reach the caller unchanged. A custom engine would run
inside DSPy's managed layer (its own retries and error boundary) and needs a lm15 Request/Response
translation. The forward interface is deprecated for DSPy 3.5; pyproject pins dspy below 4 and the
acceptance tests exercise this path, so a 3.5 upgrade fails loudly in CI. DSPy warns about
that choice through Python's warnings filters; this module leaves those filters alone (a library
must not change process-wide settings at import).

`CachingChatAdapter` is DSPy's ChatAdapter with its system message (field descriptions,
structure, task) built once per signature instead of on every call.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from typing import Any, Protocol

import dspy
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages

from ragloom.core.openai_clients import is_json
from ragloom.core.response_cache import cache_salt
from ragloom.core.usage import only_usage_callbacks

# OpenAI chat parameters passed on to the chat model; everything else DSPy sends is dropped.
_PASSED = {
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "tools",
    "tool_choice", "response_format", "seed", "presence_penalty", "frequency_penalty",
    "logprobs", "top_logprobs", "parallel_tool_calls", "reasoning_effort",
}


class DirectCompletions(Protocol):
    """The gateway's direct path (`ragloom.core.llm.LLMGateway.complete` / `acomplete`)."""

    def complete(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def acomplete(self, body: dict[str, Any]) -> dict[str, Any]: ...


def _langchain_listens() -> bool:
    """True when a LangChain run around this call has listeners besides `metered`'s (a
    LangGraph `messages` stream, a tracer, user callbacks): then the call goes through the
    chat model so they see it, token by token."""
    from langchain_core.callbacks import BaseCallbackManager
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tracers.context import tracing_v2_callback_var
    from langsmith.utils import tracing_is_enabled

    if tracing_v2_callback_var.get() is not None or tracing_is_enabled():
        return True
    config = var_child_runnable_config.get()
    callbacks = (config or {}).get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.handlers
    return not only_usage_callbacks(callbacks)


class GatewayLM(dspy.BaseLM):
    """DSPy LM over the gateway's chat model (DSPy's own cache and retries are off).

    With `direct` (the gateway), a call that no LangChain listener would see skips the
    LangChain layer: DSPy's messages go to the gateway's `complete` as an OpenAI JSON body and
    the provider's JSON reply comes back as is (same retries, errors, usage, logs; the cache
    keys its entries apart). Inside a LangGraph `messages` stream, under a tracer or with
    user callbacks, calls go through `chat` as before.
    """

    def __init__(self, chat: Any, *, model: str, direct: DirectCompletions | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("temperature", getattr(chat, "temperature", None))
        kwargs.setdefault("max_tokens", getattr(chat, "max_tokens", None))
        super().__init__(model=model, model_type="chat", cache=False, num_retries=0, **kwargs)
        self.chat = chat
        self.direct = direct

    @property
    def supports_function_calling(self) -> bool:
        return True

    def dump_state(self) -> dict[str, Any]:
        """Model and defaults only: the client lives in the gateway, never in saved programs."""
        state = super().dump_state()
        state.pop("chat", None)
        state.pop("direct", None)
        return state

    def _direct_body(
        self, prompt: str | None, messages: list[dict[str, Any]] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The JSON body for the direct path, or None when the call must go through `chat`."""
        if self.direct is None:
            return None
        merged = {**self.kwargs, **kwargs}
        if int(merged.get("n") or 1) != 1:
            return None
        body: dict[str, Any] = {
            "model": str(getattr(self.chat, "model_name", None) or self.model),
            "messages": messages or [{"role": "user", "content": prompt or ""}],
            "stream": False,
        }
        body.update({k: v for k, v in merged.items() if k in _PASSED and v is not None})
        if not is_json(body) or _langchain_listens():
            return None
        return body

    def _call_args(
        self, prompt: str | None, messages: list[dict[str, Any]] | None, kwargs: dict[str, Any]
    ) -> tuple[list[BaseMessage], dict[str, Any], int]:
        merged = {**self.kwargs, **kwargs}
        rendered = messages or [{"role": "user", "content": prompt or ""}]
        params = {k: v for k, v in merged.items() if k in _PASSED and v is not None}
        n = int(merged.get("n") or 1)
        return convert_to_messages(rendered), params, n

    def forward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run the call through the gateway; returns an OpenAI-shaped chat completion."""
        body = self._direct_body(prompt, messages, kwargs)
        if body is not None and self.direct is not None:
            with cache_salt(self._rollout(kwargs)):
                return self.direct.complete(body)
        lc_messages, params, n = self._call_args(prompt, messages, kwargs)
        with cache_salt(self._rollout(kwargs)):
            replies = [self.chat.invoke(lc_messages, **params) for _ in range(n)]
        return _completion(replies, self.model)

    async def aforward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Async `forward` (`ainvoke`)."""
        body = self._direct_body(prompt, messages, kwargs)
        if body is not None and self.direct is not None:
            with cache_salt(self._rollout(kwargs)):
                return await self.direct.acomplete(body)
        lc_messages, params, n = self._call_args(prompt, messages, kwargs)
        with cache_salt(self._rollout(kwargs)):
            replies = [await self.chat.ainvoke(lc_messages, **params) for _ in range(n)]
        return _completion(replies, self.model)

    def _rollout(self, kwargs: dict[str, Any]) -> Any:
        """DSPy's rollout_id asks for a fresh answer: it salts the gateway's cache key."""
        return {**self.kwargs, **kwargs}.get("rollout_id")


class CachingChatAdapter(dspy.ChatAdapter):
    """`dspy.ChatAdapter` that builds each signature's system message once.

    DSPy formats the same system message (field descriptions, structure, task description)
    on every call; it depends only on the signature class, which DSPy never mutates in place
    (`with_instructions`, `delete`, ... make new classes). Entries live as long as their
    signature class (weak keys); the instructions are checked on each hit all the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._system: weakref.WeakKeyDictionary[Any, tuple[str, tuple[str, ...], str]] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        fields = tuple(signature.fields)
        hit = self._system.get(signature)
        if hit is not None and hit[0] == signature.instructions and hit[1] == fields:
            return hit[2]
        message = super().format_system_message(signature)
        with self._lock:
            self._system[signature] = (signature.instructions, fields, message)
        return message


def _tool_calls(message: AIMessage) -> list[dict[str, Any]] | None:
    import json

    calls = [
        {"id": call.get("id") or f"call_{uuid.uuid4().hex[:8]}", "type": "function",
         "function": {"name": call["name"], "arguments": json.dumps(call["args"])}}
        for call in message.tool_calls
    ]
    return calls or None


def _completion(replies: list[AIMessage], model: str) -> dict[str, Any]:
    choices = []
    tokens_in = tokens_out = 0
    response_model = model
    for index, reply in enumerate(replies):
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if calls := _tool_calls(reply):
            message["tool_calls"] = calls
        finish = (reply.response_metadata or {}).get("finish_reason") or (
            "tool_calls" if reply.tool_calls else "stop")
        choices.append({"index": index, "message": message, "finish_reason": finish})
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        tokens_in += int(usage.get("input_tokens") or 0)
        tokens_out += int(usage.get("output_tokens") or 0)
        response_model = (reply.response_metadata or {}).get("model_name") or response_model
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "model": response_model,
        "choices": choices,
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                  "total_tokens": tokens_in + tokens_out},
    }
