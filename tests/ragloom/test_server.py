"""The HTTP server in process: native API, auth and tenants, limits, typed errors, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ragloom.core.errors import ConfigError, ProviderUnavailableError
from ragloom.server import create_app
from ragloom.server_auth import check_bind, is_loopback
from tests.ragloom.server_helpers import (
    ACME_DOC,
    BETA_DOC,
    KEY_A,
    KEY_B,
    auth,
    server_settings,
    upload,
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(server_settings(tmp_path)), raise_server_exceptions=False) as c:
        assert upload(c, KEY_A, "numbers.md", ACME_DOC).json()["ingested"] == 1
        assert upload(c, KEY_B, "zebras.md", BETA_DOC).json()["ingested"] == 1
        yield c


def _error(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body["error"]) == {"message", "type", "code"} and body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_ask_cites_and_keeps_the_thread(client: TestClient) -> None:
    reply = client.post("/v1/ask", headers=auth(KEY_A),
                        json={"question": "How do I write octal literals?", "thread_id": "h1"})
    body = reply.json()
    assert reply.status_code == 200 and body["thread_id"] == "h1"
    assert "0o" in body["answer"] and "[1]" in body["answer"]
    assert body["citations"][0]["source"] == "numbers.md" and body["engine"] == "extractive"
    client.post("/v1/ask", headers=auth(KEY_A), json={"question": "and hex?", "thread_id": "h1"})
    history = client.get("/v1/threads/h1", headers=auth(KEY_A)).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


def test_stream_sends_nodes_then_final(client: TestClient) -> None:
    with client.stream("POST", "/v1/ask/stream", headers=auth(KEY_A),
                       json={"question": "octal literals?"}) as reply:
        text = "".join(reply.iter_text())
    events = _events(text)
    assert events[0][0] == "node" and events[-1][0] == "final"
    final = events[-1][1]
    assert final["citations"] and final["thread_id"].startswith("http-")


def test_keys_are_required_and_checked(client: TestClient) -> None:
    _error(client.post("/v1/ask", json={"question": "octal?"}), 401, "unauthorized")
    _error(client.get("/v1/models", headers=auth("not-a-key-at-all-000000")), 401, "unauthorized")
    _error(client.get("/v1/models", headers={"Authorization": f"Basic {KEY_A}"}), 401,
           "unauthorized")
    assert client.get("/v1/models", headers=auth(KEY_B)).status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_tenant_sees_only_its_documents(client: TestClient) -> None:
    """Key A never retrieves B's documents, and the other way round."""
    a = client.post("/v1/ask", headers=auth(KEY_A),
                    json={"question": "How do zebras migrate across the Serengeti?"}).json()
    assert all(c["source"] != "zebras.md" for c in a["citations"])
    assert "Zebras" not in a["answer"]
    b = client.post("/v1/ask", headers=auth(KEY_B),
                    json={"question": "How do zebras migrate across the Serengeti?"}).json()
    assert b["citations"] and b["citations"][0]["source"] == "zebras.md"
    b_octal = client.post("/v1/ask", headers=auth(KEY_B),
                          json={"question": "How do I write octal literals?"}).json()
    assert all(c["source"] != "numbers.md" for c in b_octal["citations"])


def test_a_tenant_cannot_read_or_join_another_tenants_thread(client: TestClient) -> None:
    client.post("/v1/ask", headers=auth(KEY_A),
                json={"question": "How do I write octal literals?", "thread_id": "shared-id"})
    _error(client.get("/v1/threads/shared-id", headers=auth(KEY_B)), 404, "not_found")
    client.post("/v1/ask", headers=auth(KEY_B),
                json={"question": "zebra stripes?", "thread_id": "shared-id"})
    a = client.get("/v1/threads/shared-id", headers=auth(KEY_A)).json()["messages"]
    b = client.get("/v1/threads/shared-id", headers=auth(KEY_B)).json()["messages"]
    assert [m["content"] for m in a if m["role"] == "user"] == ["How do I write octal literals?"]
    assert [m["content"] for m in b if m["role"] == "user"] == ["zebra stripes?"]


def test_body_and_field_limits(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, server={"max_body_bytes": 4096,
                                                 "max_question_chars": 200,
                                                 "max_thread_id_chars": 16})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        marker = "UNIQUE-MARKER-"
        big = {"question": "octal?", "padding": marker * 1000}
        reply = client.post("/v1/ask", headers=auth(KEY_A), json=big)
        assert marker not in _error(reply, 413, "payload_too_large")["message"]
        assert marker not in reply.text
        headers = {**auth(KEY_A), "Content-Type": "application/json"}
        chunked = client.post("/v1/ask", headers=headers,
                              content=iter([b'{"question": "', marker.encode() * 400, b'"}']))
        _error(chunked, 413, "payload_too_large")
        reply = client.post("/v1/ask", headers=auth(KEY_A), json={"question": marker * 20})
        assert marker not in _error(reply, 422, "invalid_request")["message"]
        long_thread = {"question": "octal?", "thread_id": "t" * 17}
        _error(client.post("/v1/ask", headers=auth(KEY_A), json=long_thread), 422,
               "invalid_request")
        odd_thread = {"question": "octal?", "thread_id": "../etc"}
        _error(client.post("/v1/ask", headers=auth(KEY_A), json=odd_thread), 422,
               "invalid_request")
        empty = client.post("/v1/ask", headers=auth(KEY_A), json={"question": ""})
        assert marker not in _error(empty, 422, "invalid_request")["message"]


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    _error(client.get("/v1/ask"), 405, "method_not_allowed")
    _error(client.post("/v1/ask", headers=auth(KEY_A), content=b"not json"), 422,
           "invalid_request")


def test_openapi_and_docs_work(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/v1/chat/completions", "/v1/ask/stream", "/v1/ingest", "/readyz"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_readyz_checks_store_and_checkpointer(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body == {"status": "ready", "checks": {"store": "ok", "checkpointer": "ok"}}


def test_ingest_rejects_bad_uploads(client: TestClient) -> None:
    _error(client.post("/v1/ingest", headers=auth(KEY_A), json={"x": 1}), 422, "invalid_request")
    report = client.post("/v1/ingest", headers=auth(KEY_A),
                         files={"file": ("../../evil.exe", b"MZ...", "application/octet-stream")})
    body = report.json()
    assert report.status_code == 200 and body["ingested"] == 0
    assert body["failed"][0]["source"] == "evil.exe"  # the folder part was dropped
    assert body["failed"][0]["code"] == "unsupported_file"


def test_summarize_a_stored_source_and_text(client: TestClient) -> None:
    stored = client.post("/v1/summarize", headers=auth(KEY_B), json={"source": "zebras.md"})
    assert stored.status_code == 200 and "zebra" in stored.json()["summary"].lower()
    _error(client.post("/v1/summarize", headers=auth(KEY_A), json={"source": "zebras.md"}), 404,
           "not_found")  # B's source is not A's
    text = client.post("/v1/summarize", headers=auth(KEY_A),
                       json={"text": ACME_DOC, "length": "short"})
    assert text.status_code == 200 and text.json()["engine"] == "extractive"
    _error(client.post("/v1/summarize", headers=auth(KEY_A), json={}), 422, "invalid_request")


class FailingGraph:
    """A graph whose runs fail with a given exception."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def astream(self, *args: Any, **kwargs: Any) -> Any:
        yield ("updates", {"start_turn": {}})
        raise self.exc

    def get_state(self, config: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [(ProviderUnavailableError("upstream 503"), 503, "unavailable"),
     (RuntimeError("boom with sk-live-secretsecret123 inside"), 500, "internal")],
)
def test_failures_are_typed_json_and_streams_end_with_an_error_event(
    tmp_path: Path, exc: Exception, status: int, code: str
) -> None:
    app = create_app(server_settings(tmp_path), build_assistant=lambda tenant: FailingGraph(exc))
    with TestClient(app, raise_server_exceptions=False) as client:
        error = _error(client.post("/v1/ask", headers=auth(KEY_A), json={"question": "q?"}),
                       status, code)
        assert "secretsecret" not in error["message"] and "Traceback" not in error["message"]
        with client.stream("POST", "/v1/ask/stream", headers=auth(KEY_A),
                           json={"question": "q?"}) as reply:
            events = _events("".join(reply.iter_text()))
        assert [kind for kind, _ in events] == ["node", "error"]
        assert events[-1][1]["error"]["code"] == code
        _error(client.get("/readyz"), 503, "not_ready")


def test_no_keys_means_loopback_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = server_settings(tmp_path, keys=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    check_bind("127.0.0.1", settings.server)
    with pytest.raises(ConfigError, match=r"server\.api_keys"):
        check_bind("0.0.0.0", settings.server)
    check_bind("0.0.0.0", server_settings(tmp_path).server)  # keys: any address
    from ragloom.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9"])
    assert isinstance(result.exception, ConfigError)
    with TestClient(create_app(settings)) as client:  # open on loopback, own namespace
        reply = client.post("/v1/ask", json={"question": "octal?", "thread_id": "t1"})
        assert reply.status_code == 200


def test_several_workers_need_a_shared_checkpointer(tmp_path: Path) -> None:
    from ragloom.server import serve

    settings = server_settings(tmp_path, checkpointer={"kind": "memory"})
    with pytest.raises(ConfigError, match=r"checkpointer\.kind"):
        serve(settings, host="127.0.0.1", port=9, workers=2)


@pytest.mark.parametrize("durability", ["async", "exit"])
def test_checkpoint_durability_is_the_setting(tmp_path: Path, durability: str) -> None:
    import sqlite3

    settings = server_settings(tmp_path, checkpointer={"durability": durability})
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert upload(c, KEY_A, "numbers.md", ACME_DOC).json()["ingested"] == 1
        reply = c.post("/v1/ask", headers=auth(KEY_A),
                       json={"question": "How do I write octal literals?", "thread_id": "d1"})
        assert reply.status_code == 200 and "0o" in reply.json()["answer"]
        history = c.get("/v1/threads/d1", headers=auth(KEY_A)).json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant"]
    with sqlite3.connect(settings.checkpointer.path) as db:
        saved = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    # one checkpoint per step, or the turn's state once at its end
    assert saved > 3 if durability == "async" else saved == 1
