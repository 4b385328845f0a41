"""Clean answer tokens for `stream_mode="messages"`: only the answer's text, with the same
`[n]` citation numbers as the final answer.

The answerer's raw LLM tokens are DSPy's wire format (`[[ ## answer ## ]] ... [[ ## completed
## ]]`) citing internal passage labels (`[c2]`). `AnswerTokenStream` is a LangChain callback
handler on that one call (the node kit hides it from the messages stream): DSPy's own
`StreamListener` picks the `answer` field out of the tokens, markers are renumbered in order of
first citation (as `parse_draft` numbers the final answer), and the clean pieces are emitted as
`AIMessageChunk`s of a chat-model run on the node's own callbacks, which is what LangGraph's
messages stream, Studio and Agent Chat UI render. The chunks carry the final answer message's
id, so a client that merges by id ends with the final text.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from ragloom.core.documents import Chunk

_OPEN_MARKER = re.compile(r"\[[^\[\]\n]{0,60}$")  # a `[` whose marker may still be arriving
_MARKER = re.compile(r"\[([^\[\]\n]{1,60})\]")


class AnswerTokenStream(BaseCallbackHandler):
    """Raw tokens of the answerer's LLM call in; clean answer chunks out (see module doc)."""

    run_inline = True  # tokens are forwarded in order, on the caller's thread or loop

    def __init__(
        self, visible: CallbackManager, chunks: Sequence[Chunk], message_id: str,
        *, hold: bool = False,
    ) -> None:
        from dspy.streaming import StreamListener

        from ragloom.prompts.programs import chunk_labels

        super().__init__()
        self.visible = visible
        self.labels = chunk_labels(chunks)
        self.ids = {c.id for c in chunks}
        self.message_id = message_id
        self.listener = StreamListener(signature_field_name="answer")
        self.order: list[str] = []
        self.pending = ""
        self.run: Any = None
        self.held: list[str] | None = [] if hold else None  # text kept until `release()`
        self.dropped = False
        self.lock = threading.Lock()

    def release(self) -> None:
        """Stream what was held, and from now on stream as tokens come (a speculative answer
        that turned out to be the one)."""
        with self.lock:
            held, self.held = self.held or [], None
            for text in held:
                self._send(text)

    def discard(self) -> None:
        """Never stream this answer (a speculative answer that was not used)."""
        with self.lock:
            self.dropped, self.held = True, None

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        import dspy

        text = token if isinstance(token, str) else "".join(map(str, token))
        delta = SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text))])
        with dspy.context(adapter=dspy.ChatAdapter()):  # the listener knows DSPy's adapters
            piece = self.listener.receive(delta)
        if piece is not None and piece.chunk:
            self._emit(self._renumber(piece.chunk, final=piece.is_last_chunk))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self._emit(self._renumber("", final=True))

    def _renumber(self, text: str, *, final: bool) -> str:
        """Markers as `[n]`, spacing as `number_citations` leaves it in the final answer; a
        marker cut between tokens, and trailing spaces (a dropped marker or a `.` may follow),
        are held back until the next piece."""
        from ragloom.prompts.programs import number_citations

        text = self.pending + text
        self.pending = ""
        if not final:
            if open_marker := _OPEN_MARKER.search(text):
                text, self.pending = text[: open_marker.start()], text[open_marker.start() :]
            kept = text.rstrip(" \t")
            text, self.pending = kept, text[len(kept) :] + self.pending
        for match in _MARKER.finditer(text):
            for token in match.group(1).split(","):
                name = token.strip()
                chunk_id = self.labels.get(name) or self.labels.get(name.lower())
                chunk_id = chunk_id or (name if name in self.ids else None)
                if chunk_id and chunk_id not in self.order:
                    self.order.append(chunk_id)
        if not text:
            return ""
        guarded = number_citations(f"\x00{text}\x00", self.labels, self.order)
        return guarded.strip("\x00") if final else guarded[1:-1]

    def _emit(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            if self.dropped:
                return
            if self.held is not None:
                self.held.append(text)
                return
            self._send(text)

    def _send(self, text: str) -> None:
        if self.run is None:
            self.run = self.visible.on_chat_model_start(
                {"name": "ragloom-answer"}, [[]], run_id=uuid.uuid4(), name="ragloom-answer"
            )[0]
        message = AIMessageChunk(content=text, id=self.message_id)
        self.run.on_llm_new_token(text, chunk=ChatGenerationChunk(message=message))
