"""A Weaviate-protocol test server: REST + gRPC on 127.0.0.1, objects in memory.

A test fixture, not a product. It speaks exactly as much of Weaviate's protocol as
weaviate-client v4 needs for the ragloom adapter (`tools/stores/weaviate_store.py`), using the
client's own generated stubs (`weaviate.proto.v1`), so the real client talks to it over real
sockets:

- REST: `/v1/meta`, `/v1/.well-known/{ready,live,openid-configuration}`, `/v1/schema`,
  `/v1/schema/{class}`, `/v1/schema/{class}/tenants[/{name}]`, `/v1/nodes`.
- gRPC `weaviate.v1.Weaviate`: Search (fetch, bm25, near_vector, hybrid), BatchObjects,
  BatchDelete, TenantsGet, Aggregate (count); plus `grpc.health.v1.Health/Check`.

Scoring follows Weaviate's documentation: BM25 (k1, b from the class's invertedIndexConfig,
1.2 / 0.75 by default) over word tokens, with SQLite FTS5's IDF (log((N - n + 0.5) / (n + 0.5)),
floored at 1e-6) so it ranks like the embedded store; near_vector by cosine distance; hybrid by
relativeScoreFusion (each leg cut to its best max(limit, 100) candidates, min-max normalised,
alpha * vector + (1 - alpha) * bm25) or rankedFusion. Each collection + tenant is one in-memory
shard; idf and avgdl are per shard.

Failures can be injected: `fail_next("BatchDelete", times=1)` aborts the next gRPC call with
UNAVAILABLE; `reject_objects(predicate, times)` makes BatchObjects report per-object errors;
`drop_mid_batch(after=k, times=n)` stores the first k objects of the next n batches and then
cuts the call off (the client sees UNAVAILABLE, as for a connection reset, though the server kept
part of the batch); `slow_next(method, seconds, times)` answers the next calls late (a batch is
stored first: past the client's timeout, the write happened but the client saw
DEADLINE_EXCEEDED). `batch_faults(draw)` decides per BatchObjects call instead (seeded
schedules: `draw(n_objects)` returns None, `("unavailable", 0)`, `("drop", objects_kept)` or
`("slow", seconds)`). `calls` counts every call received, faulted or not.
"""

from __future__ import annotations

import atexit
import copy
import datetime as dt
import fnmatch
import heapq
import json
import math
import socket
import struct
import threading
import time
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from weaviate.proto.v1 import (
    aggregate_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from ragloom.core.text import tokenize

VERSION = "1.30.0"
DEFAULT_LIMIT = 10
MAX_RESULTS = 10_000  # QUERY_MAXIMUM_RESULTS
PYPI_PATH = "/pypi/weaviate-client/json"  # point weaviate.connect.v4.PYPI_PACKAGE_URL here
HYBRID_LEG_RESULTS = 100  # QUERY_HYBRID_MAXIMUM_RESULTS: candidates per hybrid leg


BatchFaultDraw = Callable[[int], "tuple[str, float] | None"]


@dataclass
class StoredObject:
    """One object in one shard."""

    uuid: str
    properties: dict[str, Any]
    vector: np.ndarray | None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))


# -- schema ---------------------------------------------------------------------------------------


def _filled_class(config: dict[str, Any]) -> dict[str, Any]:
    """A class config with the defaults Weaviate fills in (the client reads them back)."""
    cls = copy.deepcopy(config)
    name = cls["class"]
    cls["class"] = name[:1].upper() + name[1:]
    for prop in cls.setdefault("properties", []):
        data_type = prop["dataType"][0]
        is_text = data_type in ("text", "text[]")
        prop.setdefault("indexFilterable", True)
        prop.setdefault("indexSearchable", is_text)
        prop.setdefault("indexRangeFilters", False)
        if is_text:
            prop.setdefault("tokenization", "word")
    _merge(cls, _CLASS_DEFAULTS)
    cls.setdefault("vectorizer", "none")
    cls.setdefault("moduleConfig", {})
    targets = list(cls.get("vectorConfig", {}).values()) or [cls]
    for target in targets:
        target.setdefault("vectorIndexType", "hnsw")
        _merge(target.setdefault("vectorIndexConfig", {}), _HNSW_DEFAULTS)
    return cls


def _merge(target: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Fill missing keys of `target` from `defaults`, recursively."""
    for key, value in defaults.items():
        if isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge(target[key], value)
        else:
            target.setdefault(key, value)


_CLASS_DEFAULTS: dict[str, Any] = {
    "invertedIndexConfig": {
        "bm25": {"b": 0.75, "k1": 1.2},
        "cleanupIntervalSeconds": 60,
        "stopwords": {"preset": "en", "additions": None, "removals": None},
        "indexTimestamps": False,
        "indexNullState": False,
        "indexPropertyLength": False,
    },
    "multiTenancyConfig": {
        "enabled": False, "autoTenantCreation": False, "autoTenantActivation": False,
    },
    "replicationConfig": {
        "factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution",
    },
    "shardingConfig": {
        "virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1,
        "desiredVirtualCount": 128, "actualVirtualCount": 128, "key": "_id",
        "strategy": "hash", "function": "murmur3",
    },
}

_HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128,
    "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1_000_000_000_000, "flatSearchCutoff": 40_000,
    "distance": "cosine", "filterStrategy": "sweeping",
}


# -- the in-memory database -----------------------------------------------------------------------


class _Database:
    """Schema, tenants and objects, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, dict[str, str]] = {}
        self.shards: dict[tuple[str, str], dict[str, StoredObject]] = {}
        self.version = 0  # bumped by every write; keys the search caches below
        self.cache: dict[tuple[Any, ...], tuple[int, Any]] = {}

    def cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """`build()` memoised until the next write."""
        hit = self.cache.get(key)
        if hit is None or hit[0] != self.version:
            hit = (self.version, build())
            self.cache[key] = hit
        return hit[1]

    def shard(self, cls: str, tenant: str, *, create: bool = False) -> dict[str, StoredObject]:
        """Objects of one class + tenant; raises LookupError for an unknown class or tenant."""
        if cls not in self.classes:
            raise LookupError(f"class {cls!r} not found")
        multi = self.classes[cls]["multiTenancyConfig"]["enabled"]
        if multi and not tenant:
            raise ValueError(
                f"class {cls} has multi-tenancy enabled, but request was without tenant"
            )
        if not multi and tenant:
            raise ValueError(f"class {cls} has multi-tenancy disabled, but request was with tenant")
        if multi and tenant not in self.tenants[cls]:
            if not (create and self.classes[cls]["multiTenancyConfig"]["autoTenantCreation"]):
                raise LookupError(f'tenant not found: "{tenant}"')
            self.tenants[cls][tenant] = "HOT"
        return self.shards.setdefault((cls, tenant), {})


# -- REST -----------------------------------------------------------------------------------------


class _RestHandler(BaseHTTPRequestHandler):
    server_version = "WeaviateTestServer"
    protocol_version = "HTTP/1.1"
    owner: WeaviateTestServer  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _dispatch(self) -> None:
        owner = self.owner
        owner.calls[f"{self.command} {self.path.split('?')[0]}"] += 1
        body = self._body()
        public = self.path == PYPI_PATH
        if not public and not owner.authorized(self.headers.get("Authorization")):
            self._reply(401, {"error": [{"message": "unauthorized"}]})
            return
        try:
            status, payload = owner.rest(self.command, self.path.split("?")[0], body)
        except Exception as exc:  # the fixture reports, never crashes the handler thread
            status, payload = 500, {"error": [{"message": repr(exc)}]}
        self._reply(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


# -- the server -----------------------------------------------------------------------------------


class WeaviateTestServer:
    """An in-memory Weaviate (REST + gRPC) on ephemeral loopback ports, for tests.

    Use as a context manager or call `start()` / `stop()`. `url`, `http_port` and `grpc_port`
    say where to connect; `calls` counts requests by REST path / gRPC method.
    """

    def __init__(self, *, api_key: str | None = None, version: str = VERSION) -> None:
        self.api_key = api_key
        self.version = version
        self.db = _Database()
        self.calls: Counter[str] = Counter()
        self._failures: dict[str, list[grpc.StatusCode]] = {}
        self._rejections: list[tuple[Callable[[dict[str, Any]], bool], int]] = []
        self._drops: list[int] = []  # per coming batch: how many objects to keep before the cut
        self._delays: dict[str, list[float]] = {}
        self._batch_draw: BatchFaultDraw | None = None
        self._faults_lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None
        self.http_port = 0
        self.grpc_port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> WeaviateTestServer:
        """Bind both ports and serve in background threads."""
        handler = type("Handler", (_RestHandler,), {"owner": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        self._grpc.add_generic_rpc_handlers([_health_handler(self)])
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return self

    def stop(self) -> None:
        """Shut both servers down."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None

    def __enter__(self) -> WeaviateTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # -- test controls -------------------------------------------------------------------

    def reset(self) -> None:
        """Drop every collection, tenant, object, injected failure and call count."""
        with self.db.lock:
            self.db.classes.clear()
            self.db.tenants.clear()
            self.db.shards.clear()
        self._failures.clear()
        self._rejections.clear()
        self._drops.clear()
        self._delays.clear()
        self._batch_draw = None
        self.calls.clear()

    def fail_next(
        self, method: str, *, times: int = 1, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    ) -> None:
        """Abort the next `times` calls of gRPC `method` (e.g. "BatchDelete") with `code`."""
        self._failures.setdefault(method, []).extend([code] * times)

    def reject_objects(self, predicate: Callable[[dict[str, Any]], bool], *, times: int) -> None:
        """In the next `times` BatchObjects calls, report an error for objects matching."""
        self._rejections.append((predicate, times))

    def drop_mid_batch(self, *, after: int, times: int = 1) -> None:
        """In the next `times` BatchObjects calls, store the first `after` objects, then cut the
        call off with UNAVAILABLE (what a client sees when the connection drops mid-batch)."""
        with self._faults_lock:
            self._drops.extend([after] * times)

    def slow_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` calls of gRPC `method` `seconds` late (work done first)."""
        with self._faults_lock:
            self._delays.setdefault(method, []).extend([seconds] * times)

    def batch_faults(self, draw: BatchFaultDraw | None) -> None:
        """Let `draw(n_objects)` fault each coming BatchObjects call (None: stop)."""
        self._batch_draw = draw

    def _batch_fault(self, size: int) -> tuple[str, float] | None:
        """The fault for one BatchObjects call: the queues first, then the draw."""
        if self._batch_draw is None:
            return None
        with self._faults_lock:
            return self._batch_draw(size)

    def _take(self, queue: list[Any] | None) -> Any:
        with self._faults_lock:
            return queue.pop(0) if queue else None

    def objects(self, collection: str, tenant: str = "") -> dict[str, StoredObject]:
        """A snapshot of one shard (for assertions)."""
        with self.db.lock:
            return dict(self.db.shards.get((collection, tenant), {}))

    @property
    def pypi_url(self) -> str:
        """Where to point `weaviate.connect.v4.PYPI_PACKAGE_URL` so init checks stay local."""
        return f"{self.url}{PYPI_PATH}"

    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    def _injected(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method] += 1
        metadata = dict(context.invocation_metadata())
        if not self.authorized(metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
        code = self._take(self._failures.get(method))
        if code is not None:
            context.abort(code, f"injected failure in {method}")
        if method != "BatchObjects":  # a batch is slowed after it is stored (BatchObjects)
            delay = self._take(self._delays.get(method))
            if delay:
                time.sleep(delay)

    def _rejects(self, properties: dict[str, Any]) -> bool:
        return any(predicate(properties) for predicate, _ in self._rejections)

    def _spend_rejections(self) -> None:
        self._rejections = [(p, n - 1) for p, n in self._rejections if n > 1]

    # -- REST routes ---------------------------------------------------------------------

    def rest(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Route one REST request; returns (status, JSON body)."""
        if path == PYPI_PATH:  # the client's "is there a newer client" check, answered locally
            from weaviate import __version__

            return 200, {"info": {"version": __version__}}
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        if parts in (["meta"],):
            return 200, {"version": self.version, "hostname": self.url, "modules": {},
                         "grpcMaxMessageSize": 104_858_000}
        if parts in (["nodes"],):
            return 200, {"nodes": [{"name": "node1", "status": "HEALTHY", "version": self.version,
                                    "gitHash": "test", "stats": {"shardCount": 0,
                                                                 "objectCount": 0}}]}
        if parts[:1] == [".well-known"]:
            return (404, None) if parts[1:] == ["openid-configuration"] else (200, None)
        if parts[:1] == ["schema"]:
            with self.db.lock:
                return self._schema(method, parts[1:], body)
        return 404, {"error": [{"message": f"no route {method} {path}"}]}

    def _schema(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        db = self.db
        if not parts:
            if method == "POST":
                cls = _filled_class(body)
                if cls["class"] in db.classes:
                    return 422, {"error": [{"message": f"class {cls['class']} already exists"}]}
                db.classes[cls["class"]] = cls
                db.tenants[cls["class"]] = {}
                return 200, cls
            return 200, {"classes": list(db.classes.values())}
        name = parts[0]
        if name not in db.classes:
            return 404, None
        if len(parts) == 1:
            if method == "DELETE":
                del db.classes[name]
                del db.tenants[name]
                for key in [k for k in db.shards if k[0] == name]:
                    del db.shards[key]
                db.version += 1
            return 200, db.classes.get(name)
        if parts[1] == "tenants":
            return self._tenants(method, name, parts[2:], body)
        return 404, None

    def _tenants(self, method: str, cls: str, parts: list[str], body: Any) -> tuple[int, Any]:
        tenants = self.db.tenants[cls]
        if parts:  # HEAD/GET /schema/{cls}/tenants/{name}
            status = tenants.get(parts[0])
            return (404, None) if status is None else (200, _tenant_json(parts[0], status))
        if method == "GET":
            return 200, [_tenant_json(n, s) for n, s in tenants.items()]
        if method == "DELETE":
            for name in body or []:
                tenants.pop(name, None)
                self.db.shards.pop((cls, name), None)
            self.db.version += 1
            return 200, None
        for item in body or []:  # POST creates, PUT updates status
            tenants[item["name"]] = _status_in(item.get("activityStatus"))
        return 200, [_tenant_json(i["name"], tenants[i["name"]]) for i in body or []]


_shared: WeaviateTestServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> WeaviateTestServer:
    """One server for the whole test process, for suites that open many short-lived stores.

    Never `reset()` it: give each store its own collection name instead. Stopped at exit.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WeaviateTestServer().start()
            atexit.register(_shared.stop)
        return _shared


def _status_in(status: str | None) -> str:
    names = {"ACTIVE": "HOT", "INACTIVE": "COLD", "OFFLOADED": "FROZEN"}
    return names.get(status or "", status or "HOT")


def _tenant_json(name: str, status: str) -> dict[str, str]:
    shown = {"HOT": "ACTIVE", "COLD": "INACTIVE", "FROZEN": "OFFLOADED"}.get(status, status)
    return {"name": name, "activityStatus": shown}


def _health_handler(server: WeaviateTestServer) -> grpc.GenericRpcHandler:
    def check(request: Any, context: grpc.ServicerContext) -> Any:
        server.calls["Health/Check"] += 1
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )


# -- gRPC -----------------------------------------------------------------------------------------


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    """weaviate.v1.Weaviate: the methods the adapter uses."""

    def __init__(self, server: WeaviateTestServer) -> None:
        self.server = server
        self.db = server.db

    def _guard(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        try:
            with self.db.lock:
                return fn()
        except LookupError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc).strip("'\""))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server._injected("BatchObjects", context)
        started = time.perf_counter()
        server = self.server
        keep = server._take(server._drops)
        delay = server._take(server._delays.get("BatchObjects"))
        drawn = server._batch_fault(len(request.objects)) if keep is None and not delay else None
        if drawn is not None:
            kind, value = drawn
            if kind == "unavailable":
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected failure in BatchObjects")
            keep, delay = (int(value), None) if kind == "drop" else (None, float(value))
        objects = list(request.objects) if keep is None else list(request.objects)[:keep]
        errors = self._guard(context, lambda: self._batch(objects))
        server._spend_rejections()
        if keep is not None:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"injected: connection reset after {len(objects)} of "
                          f"{len(request.objects)} objects were stored")
        if delay:
            time.sleep(delay)
        return batch_pb2.BatchObjectsReply(
            took=time.perf_counter() - started,
            errors=[batch_pb2.BatchObjectsReply.BatchError(index=i, error=e) for i, e in errors],
        )

    def _batch(self, objects: Iterable[Any]) -> list[tuple[int, str]]:
        errors: list[tuple[int, str]] = []
        for index, obj in enumerate(objects):
            try:
                cls = self.db.classes.get(obj.collection)
                if cls is None:
                    raise LookupError(f"class {obj.collection!r} not found")
                props = _decode_properties(obj.properties, cls)
                if self.server._rejects(props):
                    raise ValueError("injected object error")
                vector = _decode_vector(obj.vector_bytes, obj.vectors, obj.vector)
                shard = self.db.shard(obj.collection, obj.tenant, create=True)
                _check_dims(shard, vector)
                shard[obj.uuid] = StoredObject(obj.uuid, props, vector)
                self.db.version += 1
            except (LookupError, ValueError) as exc:
                errors.append((index, str(exc).strip("'\"")))
        return errors

    def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server._injected("BatchDelete", context)

        def run() -> Any:
            shard = self.db.shard(request.collection, request.tenant)
            cls = self.db.classes[request.collection]
            passes = _predicate(request.filters, cls)
            hits = [o for o in shard.values() if passes(o)]
            if not request.dry_run:
                for obj in hits[:MAX_RESULTS]:
                    del shard[obj.uuid]
                self.db.version += 1
            done = min(len(hits), MAX_RESULTS)
            return batch_delete_pb2.BatchDeleteReply(
                took=0.0, failed=0, matches=len(hits), successful=done,
                objects=[
                    batch_delete_pb2.BatchDeleteObject(
                        uuid=uuid_lib.UUID(o.uuid).bytes, successful=True
                    )
                    for o in hits[:done]
                ] if request.verbose else [],
            )

        return self._guard(context, run)

    def TenantsGet(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server._injected("TenantsGet", context)
        tenants_pb = tenants_pb2

        def run() -> Any:
            if request.collection not in self.db.classes:
                raise LookupError(f"class {request.collection!r} not found")
            have = self.db.tenants[request.collection]
            names = list(request.names.values) if request.HasField("names") else list(have)
            status: dict[str, Any] = {"HOT": tenants_pb.TENANT_ACTIVITY_STATUS_HOT,
                      "COLD": tenants_pb.TENANT_ACTIVITY_STATUS_COLD,
                      "FROZEN": tenants_pb.TENANT_ACTIVITY_STATUS_FROZEN}
            return tenants_pb.TenantsGetReply(
                took=0.0,
                tenants=[tenants_pb.Tenant(name=n, activity_status=status.get(have[n], 0))
                         for n in names if n in have],
            )

        return self._guard(context, run)

    def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server._injected("Aggregate", context)

        def run() -> Any:
            shard = self.db.shard(request.collection, request.tenant)
            cls = self.db.classes[request.collection]
            if request.HasField("filters"):
                passes = _predicate(request.filters, cls)
                count = sum(1 for o in shard.values() if passes(o))
            else:
                count = len(shard)
            return aggregate_pb2.AggregateReply(
                took=0.0, single_result=aggregate_pb2.AggregateReply.Single(objects_count=count)
            )

        return self._guard(context, run)

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server._injected("Search", context)
        started = time.perf_counter()
        hits = self._guard(context, lambda: _search(self.db, request))
        cls = self.db.classes[request.collection]
        return search_get_pb2.SearchReply(
            took=time.perf_counter() - started,
            results=[_result(request.metadata, obj, scores, cls) for obj, scores in hits],
        )


# -- decoding / encoding --------------------------------------------------------------------------


def _prop_types(cls: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["dataType"][0] for p in cls.get("properties", [])}


def _decode_properties(props: Any, cls: dict[str, Any]) -> dict[str, Any]:
    types = _prop_types(cls)
    values: dict[str, Any] = dict(json_format.MessageToDict(props.non_ref_properties))
    for arr in props.text_array_properties:
        values[arr.prop_name] = list(arr.values)
    for arr in props.int_array_properties:
        values[arr.prop_name] = list(arr.values)
    for arr in props.number_array_properties:
        raw = arr.values_bytes
        values[arr.prop_name] = list(struct.unpack(f"{len(raw) // 8}d", raw))
    for arr in props.boolean_array_properties:
        values[arr.prop_name] = list(arr.values)
    for name in props.empty_list_props:
        values[name] = []
    for name, value in values.items():
        kind = types.get(name)
        if kind is None:
            raise ValueError(f"no such prop with name '{name}' found in class '{cls['class']}'")
        if kind == "int" and value is not None:
            values[name] = int(value)
        if kind == "date" and value is not None:
            _parse_date(value)  # validates
    return values


def _decode_vector(raw: bytes, vectors: Any, floats: Any) -> np.ndarray | None:
    if raw:
        return np.frombuffer(raw, dtype=np.float32).copy()
    if len(vectors):
        data = vectors[0].vector_bytes
        return np.frombuffer(data, dtype=np.float32).copy()
    if len(floats):
        return np.asarray(list(floats), dtype=np.float32)
    return None


def _check_dims(shard: dict[str, StoredObject], vector: np.ndarray | None) -> None:
    if vector is None:
        return
    for other in shard.values():
        if other.vector is not None:
            if len(other.vector) != len(vector):
                raise ValueError(
                    f"new node has a vector with length {len(vector)}. "
                    f"Existing nodes have vectors with length {len(other.vector)}"
                )
            return


def _parse_date(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _encode_value(kind: str, value: Any) -> Any:
    props = properties_pb2
    if value is None:
        return props.Value(null_value=0)
    if kind == "text[]":
        return props.Value(list_value=props.ListValue(text_values=props.TextValues(values=value)))
    if kind == "int[]":
        raw = struct.pack(f"{len(value)}q", *value)
        return props.Value(list_value=props.ListValue(int_values=props.IntValues(values=raw)))
    if kind == "number[]":
        raw = struct.pack(f"{len(value)}d", *value)
        return props.Value(list_value=props.ListValue(number_values=props.NumberValues(values=raw)))
    if kind == "int":
        return props.Value(int_value=int(value))
    if kind == "number":
        return props.Value(number_value=float(value))
    if kind == "boolean":
        return props.Value(bool_value=bool(value))
    if kind == "date":
        return props.Value(date_value=str(value))
    return props.Value(text_value=str(value))


def _result(
    wanted: Any, obj: StoredObject, scores: dict[str, float], cls: dict[str, Any]
) -> Any:
    types = _prop_types(cls)
    fields = {k: _encode_value(types.get(k, "text"), v) for k, v in obj.properties.items()}
    meta: dict[str, Any] = {"id": obj.uuid, "id_as_bytes": uuid_lib.UUID(obj.uuid).bytes}
    if wanted.score and "score" in scores:
        meta.update(score=scores["score"], score_present=True)
    if wanted.distance and "distance" in scores:
        meta.update(distance=scores["distance"], distance_present=True)
    if wanted.certainty and "distance" in scores:
        meta.update(certainty=1 - scores["distance"] / 2, certainty_present=True)
    if wanted.creation_time_unix:
        meta.update(creation_time_unix=obj.created_ms, creation_time_unix_present=True)
    if wanted.vector and obj.vector is not None:
        meta["vector_bytes"] = obj.vector.astype(np.float32).tobytes()
    return search_get_pb2.SearchResult(
        properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields=fields),
            target_collection=cls["class"],
        ),
        metadata=search_get_pb2.MetadataResult(**meta),
    )


# -- filters --------------------------------------------------------------------------------------


def _filter_value(flt: Any) -> Any:
    if flt.HasField("value_text_array"):
        return list(flt.value_text_array.values)
    if flt.HasField("value_int_array"):
        return list(flt.value_int_array.values)
    if flt.HasField("value_number_array"):
        return list(flt.value_number_array.values)
    if flt.HasField("value_boolean_array"):
        return list(flt.value_boolean_array.values)
    for name in ("value_text", "value_int", "value_number", "value_boolean"):
        if flt.HasField(name):
            return getattr(flt, name)
    return None


def _coerce(kind: str, value: Any) -> Any:
    if kind.startswith("date") and isinstance(value, str):
        return _parse_date(value)
    return value


def _predicate(flt: Any, cls: dict[str, Any]) -> Callable[[StoredObject], bool]:
    """A base_pb2.Filters (the operators the adapter emits) as a test on stored objects."""
    op = type(flt).Operator.Name(flt.operator)
    if op in ("OPERATOR_AND", "OPERATOR_OR", "OPERATOR_NOT"):
        parts = [_predicate(f, cls) for f in flt.filters]
        if op == "OPERATOR_AND":
            return lambda obj: all(p(obj) for p in parts)
        if op == "OPERATOR_OR":
            return lambda obj: any(p(obj) for p in parts)
        return lambda obj: not all(p(obj) for p in parts)
    prop = flt.target.property if flt.HasField("target") else (flt.on[0] if flt.on else "")
    kind = "text" if prop == "_id" else _prop_types(cls).get(prop)
    if kind is None:
        raise ValueError(f"no such prop with name '{prop}' found in class '{cls['class']}'")
    want = _filter_value(flt)
    test = _comparison(op, [_coerce(kind, v) for v in _as_list(want)])

    def check(obj: StoredObject) -> bool:
        have = obj.uuid if prop == "_id" else obj.properties.get(prop)
        if op == "OPERATOR_IS_NULL":
            return (have is None) == bool(want)
        if have is None:
            return False
        return test([_coerce(kind, v) for v in _as_list(have)])

    return check


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _comparison(op: str, wants: list[Any]) -> Callable[[list[Any]], bool]:
    """A test on an object's value(s) for one leaf operator."""
    if op in ("OPERATOR_CONTAINS_ANY", "OPERATOR_CONTAINS_ALL", "OPERATOR_CONTAINS_NONE"):
        wanted = set(wants)
        if op == "OPERATOR_CONTAINS_ANY":
            return lambda items: not wanted.isdisjoint(items)
        if op == "OPERATOR_CONTAINS_ALL":
            return lambda items: wanted <= set(items)
        return lambda items: wanted.isdisjoint(items)
    if op == "OPERATOR_IS_NULL":
        return lambda items: True  # decided in the caller
    want = wants[0]
    if op == "OPERATOR_LIKE":
        return lambda items: any(fnmatch.fnmatchcase(str(i), str(want)) for i in items)
    tests: dict[str, Callable[[Any], bool]] = {
        "OPERATOR_EQUAL": lambda i: i == want,
        "OPERATOR_NOT_EQUAL": lambda i: i != want,
        "OPERATOR_GREATER_THAN": lambda i: i > want,
        "OPERATOR_GREATER_THAN_EQUAL": lambda i: i >= want,
        "OPERATOR_LESS_THAN": lambda i: i < want,
        "OPERATOR_LESS_THAN_EQUAL": lambda i: i <= want,
    }
    if op not in tests:
        raise ValueError(f"operator {op} is not supported by the test server")
    single = tests[op]
    return lambda items: any(single(i) for i in items)


# -- search ---------------------------------------------------------------------------------------

Hit = tuple[StoredObject, dict[str, float]]


@dataclass
class _Shard:
    """One class + tenant at search time, with its BM25 statistics and vectors cached."""

    db: _Database
    cls: dict[str, Any]
    tenant: str
    objects: dict[str, StoredObject]

    def bm25_stats(self, prop: str) -> tuple[dict[str, Counter[str]], dict[str, int], Counter[str]]:
        """(term counts per object, token count per object, document frequency) of `prop`."""

        def build() -> tuple[dict[str, Counter[str]], dict[str, int], Counter[str]]:
            tokens = {u: _prop_tokens(o, prop) for u, o in self.objects.items()}
            df: Counter[str] = Counter(t for toks in tokens.values() for t in set(toks))
            return {u: Counter(t) for u, t in tokens.items()}, {
                u: len(t) for u, t in tokens.items()
            }, df

        return self.db.cached(("bm25", self.cls["class"], self.tenant, prop), build)  # type: ignore[no-any-return]

    def vectors(self) -> tuple[dict[str, int], np.ndarray]:
        """(row of each object with a vector, unit-normalised float64 matrix)."""

        def build() -> tuple[dict[str, int], np.ndarray]:
            have = [(u, o.vector) for u, o in self.objects.items() if o.vector is not None]
            if not have:
                return {}, np.zeros((0, 0))
            if len({len(v) for _, v in have}) > 1:
                raise ValueError("objects have vectors of different lengths")
            matrix = np.stack([v for _, v in have]).astype(np.float64)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
            return {u: i for i, (u, _) in enumerate(have)}, matrix

        return self.db.cached(("vectors", self.cls["class"], self.tenant), build)  # type: ignore[no-any-return]


def _search(db: _Database, request: Any) -> list[Hit]:
    shard = _Shard(db, db.classes[request.collection], request.tenant,
                   db.shard(request.collection, request.tenant))
    objects = list(shard.objects.values())
    if request.HasField("filters"):
        passes = _predicate(request.filters, shard.cls)
        objects = [o for o in objects if passes(o)]
    limit = min(request.limit or DEFAULT_LIMIT, MAX_RESULTS)
    if request.HasField("bm25_search"):
        bm = request.bm25_search
        hits = _bm25(shard, objects, bm.query, list(bm.properties))
    elif request.HasField("near_vector"):
        nv = request.near_vector
        query = _decode_vector(nv.vector_bytes, nv.vectors, nv.vector)
        hits = _near_vector(shard, objects, query, top=request.offset + limit)
        if nv.HasField("distance"):
            hits = [h for h in hits if h[1]["distance"] <= nv.distance]
    elif request.HasField("hybrid_search"):
        depth = max(request.offset + limit, HYBRID_LEG_RESULTS)
        hits = _hybrid(shard, objects, request.hybrid_search, depth)
    else:
        objects.sort(key=lambda o: o.uuid)
        if request.after:
            objects = [o for o in objects if o.uuid > request.after]
        hits = [(o, {}) for o in objects]
    return hits[request.offset : request.offset + limit]


def _near_vector(
    shard: _Shard, objects: list[StoredObject], query: np.ndarray | None, top: int | None = None
) -> list[Hit]:
    """The `top` (default all) objects nearest to `query` by cosine distance (ties by uuid)."""
    if query is None:
        raise ValueError("near_vector needs a vector")
    rows, matrix = shard.vectors()
    if not rows:
        return []
    if matrix.shape[1] != len(query):
        raise ValueError(f"vector lengths don't match: {len(query)} vs {matrix.shape[1]}")
    q = query.astype(np.float64)
    q = q / (float(np.linalg.norm(q)) or 1.0)
    cosine = (matrix @ q).tolist()
    hits = [(o, {"distance": 1.0 - cosine[rows[o.uuid]]}) for o in objects if o.uuid in rows]
    order: Callable[[Hit], tuple[float, str]] = lambda h: (h[1]["distance"], h[0].uuid)  # noqa: E731
    return sorted(hits, key=order) if top is None else heapq.nsmallest(top, hits, key=order)


def _bm25(
    shard: _Shard, objects: list[StoredObject], query: str, properties: list[str]
) -> list[Hit]:
    """BM25 (FTS5's idf) of `query` over `properties` (`name^boost` weighs a property's
    score), statistics from the whole shard."""
    cls = shard.cls
    config = cls["invertedIndexConfig"]["bm25"]
    k1, b = float(config["k1"]), float(config["b"])
    types = _prop_types(cls)
    searchable = {p["name"] for p in cls["properties"] if p.get("indexSearchable")}
    boosts = {p.split("^")[0]: float(p.split("^")[1]) if "^" in p else 1.0 for p in properties}
    tokenization = {p["name"]: p.get("tokenization", "word") for p in cls["properties"]}
    props = list(boosts) or sorted(  # default: the word-tokenized text properties
        n for n in searchable if types[n] in ("text", "text[]") and tokenization[n] != "field"
    )
    terms = list(dict.fromkeys(tokenize(query)))  # each query term counts once
    # BM25F as SQLite FTS5 computes it over several columns: a term's frequency is the
    # boost-weighted sum over the properties, the length is the object's total length, and a
    # term's document frequency counts objects holding it in any of the properties.
    stats = [shard.bm25_stats(prop) for prop in props]
    totals: Counter[str] = Counter()
    uuids: set[str] = set()
    for _, lengths, _ in stats:
        totals.update(lengths)
        uuids |= set(lengths)
    n_docs = len(uuids)
    avgdl = (sum(totals.values()) / n_docs) if n_docs else 0.0
    holders = {t: {u for counts, _, _ in stats for u, tf in counts.items() if tf.get(t)}
               for t in terms}
    idf = {t: max(math.log((n_docs - len(holders[t]) + 0.5) / (len(holders[t]) + 0.5)), 1e-6)
           for t in terms}
    scores: dict[str, float] = {}
    for obj in objects:
        norm = 1 - b + b * (totals[obj.uuid] / avgdl if avgdl else 0.0)
        for term in terms:
            f = sum(boosts.get(prop, 1.0) * counts[obj.uuid].get(term, 0)
                    for prop, (counts, _, _) in zip(props, stats, strict=True))
            if f:
                gain = idf[term] * f * (k1 + 1) / (f + k1 * norm)
                scores[obj.uuid] = scores.get(obj.uuid, 0.0) + gain
    by_id = {o.uuid: o for o in objects}
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [(by_id[u], {"score": s}) for u, s in ranked]


def _prop_tokens(obj: StoredObject, prop: str) -> list[str]:
    value = obj.properties.get(prop)
    if isinstance(value, list):
        return [t for v in value for t in tokenize(str(v))]
    return tokenize(str(value)) if value is not None else []


def _min_max(values: list[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def _hybrid(shard: _Shard, objects: list[StoredObject], hybrid: Any, depth: int) -> list[Hit]:
    """Fuse a BM25 leg and a vector leg, each cut to its best `depth` candidates."""
    alpha = hybrid.alpha_param if hybrid.use_alpha_param else hybrid.alpha
    keyword: list[Hit] = []
    if alpha < 1:
        keyword = _bm25(shard, objects, hybrid.query, list(hybrid.properties))[:depth]
    vector: list[Hit] = []
    if alpha > 0:
        nv = hybrid.near_vector if hybrid.HasField("near_vector") else None
        query = _decode_vector(
            hybrid.vector_bytes or (nv.vector_bytes if nv else b""),
            hybrid.vectors or (nv.vectors if nv else []),
            hybrid.vector or (nv.vector if nv else []),
        )
        if query is None:
            raise ValueError("hybrid search without a vector needs a vectorizer module")
        vector = _near_vector(shard, objects, query, top=depth)
        if hybrid.HasField("vector_distance"):
            vector = [h for h in vector if h[1]["distance"] <= hybrid.vector_distance]
    ranked = type(hybrid).FusionType.Value("FUSION_TYPE_RANKED") == hybrid.fusion_type
    legs = [
        ([h[0] for h in keyword], [h[1]["score"] for h in keyword], 1 - alpha),
        ([h[0] for h in vector], [1 - h[1]["distance"] for h in vector], alpha),
    ]
    fused: dict[str, float] = {}
    by_id: dict[str, StoredObject] = {}
    for objs, raw, weight in legs:
        norms = [1 / (60 + rank) for rank in range(len(raw))] if ranked else _min_max(raw)
        for obj, norm in zip(objs, norms, strict=True):
            fused[obj.uuid] = fused.get(obj.uuid, 0.0) + weight * norm
            by_id[obj.uuid] = obj
    order = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    return [(by_id[u], {"score": s}) for u, s in order]
