"""Shipped fakes: other apps test with them too.

- `OpenAICompatibleServer` (+ `Reply`, `ToolCall`, `Fault`): a real local OpenAI-compatible server.
- `HashingEmbedder`: deterministic, instant embeddings.
- `make_test_settings`: settings pointing everything at a temp dir (and a local server).
"""

from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.core.testing.openai_server import (
    Fault,
    OpenAICompatibleServer,
    RecordedRequest,
    Reply,
    ToolCall,
    last_user_text,
)
from ragloom.core.testing.settings import TEST_API_KEY, make_test_settings

__all__ = [
    "TEST_API_KEY",
    "Fault",
    "HashingEmbedder",
    "OpenAICompatibleServer",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "last_user_text",
    "make_test_settings",
]
