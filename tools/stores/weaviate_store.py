"""The Weaviate chunk store: weaviate-client v4 over REST + gRPC, multi-tenant.

Two collections, both created from a declared schema with no vectorizer (ragloom brings its
own vectors) and multi-tenancy on:

- `<collection>` (default `RagloomChunk`): one object per chunk, UUID = uuid5(chunk id), with
  text, place in the source, `tags` and `modified` (for filters) and the full metadata as JSON.
- `<collection>Source`: one object per source, UUID = uuid5("source:" + source), holding the
  source's content hash, so `sources()` need not scan every chunk.

Every call names a tenant; None maps to `DEFAULT_TENANT`. A tenant is created on its first
write; reading a tenant that does not exist yet gives empty results. Searches are Weaviate's
own: bm25 over `text` and the chunk's `context` (title + heading path, boosted by
`SearchOptions.context_weight`: BM25F), near_vector over vectors of the contextual text (score =
1 - cosine distance = cosine similarity, as in the embedded store); hybrid fetches
`SearchOptions.candidates` per leg and fuses them with the same code as the embedded store
(`base.fuse`: relative-score, RRF or per-document), so both stores rank alike. When the
collection has a reranker module (`reranker-*` in its module config), `rerank()` asks Weaviate to
rescore chunks (see `ragloom.tools.rerank.WeaviateReranker`). Transport failures (gRPC
UNAVAILABLE, connection errors, 5xx) become `StoreUnavailableError` and are retried by the
project's retry policy (`ragloom.core.retry`); objects a batch rejects are retried, then reported
in a `StoreWriteError` naming every chunk that was not stored (so is a batch whose retries ran out,
with the batches after it). Batches go to gRPC BatchObjects once per attempt: `insert_many` would
retry UNAVAILABLE itself (1 + 2 + 4 + 8 s of sleep, unseen by the policy and its deadline), so the
policy is the only retry layer and `write_stats` counts its retries. Reads do the same on a client
the store owns: the client's search, aggregate and tenant calls would sleep 1 + 2 + ... + 32 s on
UNAVAILABLE before failing, so they are sent once per policy attempt (a client passed in with
`owns_client=False` keeps its own behaviour). Object UUIDs are uuid5 of the
chunk id, so a batch the server half-stored before the client saw an error is simply written
again, never duplicated. Weaviate has no transactions: `replace_source` writes the new chunks
first, then removes stale ones, then records the content hash, so an interrupted replace is redone
by the next ingest instead of being skipped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import structlog

from ragloom.core.documents import Chunk
from ragloom.core.embedders import Embedder
from ragloom.core.errors import (
    AuthenticationError,
    ConfigError,
    DeadlineExceededError,
    RagloomError,
    StoreError,
    StoreWriteError,
)
from ragloom.core.errors import StoreUnavailableError as Unavailable
from ragloom.core.retry import RetryPolicy, retry_policy
from ragloom.tools.stores.base import (
    SEARCH_MODES,
    Filters,
    SearchMode,
    SearchOptions,
    _as_date,
    chunk_context,
    embed_text,
    fuse,
)
from ragloom.tools.stores.weaviate_filters import day_start, to_weaviate_filter

if TYPE_CHECKING:
    from weaviate import WeaviateClient
    from weaviate.collections import Collection

    from ragloom.core.settings import Settings, StoreSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_TENANT = "default"
UUID_NAMESPACE = uuid.UUID("5b0c3d1e-8f4a-5c2b-9e7d-2a6f1b3c4d5e")
MAX_RESULTS = 10_000  # Weaviate's QUERY_MAXIMUM_RESULTS default
WEAVIATE_CLOUD_SUFFIXES = (".weaviate.cloud", ".weaviate.network", ".semi.network")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def chunk_uuid(chunk_id: str) -> str:
    """Deterministic object UUID of a chunk: re-upserting the same chunk overwrites it."""
    return str(uuid.uuid5(UUID_NAMESPACE, chunk_id))


def source_uuid(source: str) -> str:
    """Deterministic object UUID of a source record."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"source:{source}"))


def tenant_name(tenant: str | None) -> str:
    """The Weaviate tenant for a ragloom tenant (None is the default tenant)."""
    return tenant or DEFAULT_TENANT


# -- connecting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionPlan:
    """Which `weaviate.connect_to_*` to call, with which arguments (secrets excluded)."""

    method: str  # "local" | "custom" | "weaviate_cloud"
    kwargs: dict[str, Any]


def connection_plan(store: StoreSettings) -> ConnectionPlan:
    """Choose the connect function from `store.weaviate_url` (pure; the key is added later).

    `https://<cluster>.weaviate.cloud` → connect_to_weaviate_cloud; `http://localhost:8080`
    (or 127.0.0.1) → connect_to_local; anything else → connect_to_custom with the same host for
    gRPC on `store.weaviate_grpc_port`, TLS on both when the URL is https. No URL means local.
    """
    url = store.weaviate_url or "http://localhost:8080"
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"bad Weaviate URL {url!r}", setting="store.weaviate_url",
            fix="use http(s)://host:port, e.g. http://localhost:8080",
        )
    host, secure = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if secure else 8080)
    if host.endswith(WEAVIATE_CLOUD_SUFFIXES):
        return ConnectionPlan("weaviate_cloud", {"cluster_url": url})
    if host in LOCAL_HOSTS and not secure:
        return ConnectionPlan(
            "local", {"host": host, "port": port, "grpc_port": store.weaviate_grpc_port}
        )
    return ConnectionPlan(
        "custom",
        {"http_host": host, "http_port": port, "http_secure": secure, "grpc_host": host,
         "grpc_port": store.weaviate_grpc_port, "grpc_secure": secure},
    )


def connect(
    store: StoreSettings, *, skip_init_checks: bool = False, timeout: float = 60.0
) -> WeaviateClient:
    """A connected weaviate-client v4 for these settings (API key auth when one is set)."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout
    from weaviate.exceptions import WeaviateInvalidInputError

    plan = connection_plan(store)
    key = store.weaviate_api_key.get_secret_value() if store.weaviate_api_key else None
    kwargs = dict(plan.kwargs)
    kwargs["auth_credentials"] = Auth.api_key(key) if key else None
    kwargs["skip_init_checks"] = skip_init_checks
    kwargs["additional_config"] = AdditionalConfig(
        timeout=Timeout(init=min(timeout, 30.0), query=timeout, insert=timeout * 2)
    )
    if plan.method == "weaviate_cloud" and key is None:
        raise ConfigError(
            "Weaviate Cloud needs an API key", setting="store.weaviate_api_key",
            fix="set RAGLOOM_STORE__WEAVIATE_API_KEY",
        )
    connect_fn = getattr(weaviate, f"connect_to_{plan.method}")
    log.info("weaviate.connect", method=plan.method, url=store.weaviate_url)
    try:
        return _guarded(lambda: connect_fn(**kwargs), "connect")  # type: ignore[no-any-return]
    except (ValueError, WeaviateInvalidInputError) as exc:  # pydantic rejects the parameters
        raise ConfigError(
            f"bad Weaviate connection settings: {exc}", setting="store.weaviate_url",
            fix="check store.weaviate_url and store.weaviate_grpc_port",
        ) from exc


# -- errors ---------------------------------------------------------------------------------------

_TRANSIENT_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
_AUTH_CODES = ("UNAUTHENTICATED", "PERMISSION_DENIED")


def map_weaviate_error(exc: BaseException, operation: str) -> RagloomError:
    """A weaviate-client / grpc / httpx exception as a ragloom error (retryable where it is)."""
    if isinstance(exc, RagloomError):
        return exc
    name = type(exc).__name__
    text = f"weaviate {operation} failed ({name}): {str(exc)[:500]}"
    status = getattr(exc, "status_code", None)
    code = _grpc_code(exc)
    details = getattr(exc, "details", None)
    if code is not None and callable(details):  # a raw gRPC error: its code and message only
        text = f"weaviate {operation} failed (gRPC {code}): {str(details())[:300]}"
    if status in (401, 403) or code in _AUTH_CODES or name in (
        "AuthenticationFailedError", "InsufficientPermissionsError"
    ):
        return AuthenticationError(
            text, setting="store.weaviate_api_key", fix="set a valid Weaviate API key"
        )
    if isinstance(status, int):
        return Unavailable(text) if status >= 500 or status == 429 else StoreError(text)
    transient_names = (
        "WeaviateConnectionError", "WeaviateTimeoutError", "WeaviateStartUpError",
        "WeaviateGRPCUnavailableError", "WeaviateRetryError", "WeaviateClosedClientError",
    )
    if (
        code in _TRANSIENT_CODES
        or name in transient_names
        or any(c in str(exc) for c in _TRANSIENT_CODES)
        or "deadline exceeded" in str(exc).lower()  # WeaviateBatchError("...Deadline Exceeded.")
        or isinstance(exc, ConnectionError | TimeoutError)
        or _is_httpx_transport_error(exc)
    ):
        return Unavailable(text)
    return StoreError(text)


def _grpc_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return str(getattr(code(), "name", code()))
        except Exception:
            return None
    return None


def _is_httpx_transport_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - a weaviate-client dependency
        return False
    return isinstance(exc, httpx.TransportError)


def _client_errors() -> tuple[type[BaseException], ...]:
    """Exception types the client stack raises (caught and mapped, never passed on raw)."""
    import grpc
    import httpx
    from weaviate.exceptions import WeaviateBaseError

    return (WeaviateBaseError, grpc.RpcError, httpx.HTTPError, ConnectionError, TimeoutError)


def _retried(policy: RetryPolicy, fn: Callable[[], T], operation: str) -> T:
    """`fn` under the retry policy; running out of time is a store error, not a provider one."""
    try:
        return policy.call(lambda: _guarded(fn, operation))
    except DeadlineExceededError as exc:
        raise Unavailable(f"weaviate {operation}: {exc.message}") from exc


def _guarded(fn: Callable[[], T], operation: str) -> T:
    try:
        return fn()
    except _client_errors() as exc:
        raise map_weaviate_error(exc, operation) from exc


# -- the store ------------------------------------------------------------------------------------


@dataclass
class WriteStats:
    """What the write path did: BatchObjects calls sent, of which policy retries (the most
    attempts one batch took), objects sent again because the server rejected them, and the
    chunks reported not stored."""

    batch_calls: int = 0
    retries: int = 0
    max_attempts: int = 0
    objects_resent: int = 0
    failed_chunks: list[str] = field(default_factory=list)


class WeaviateStore:
    """A `ChunkStore` on a Weaviate cluster (or the test server), one tenant per call."""

    def __init__(
        self,
        client: WeaviateClient,
        embedder: Embedder,
        *,
        collection: str = "RagloomChunk",
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        object_retries: int = 2,
        owns_client: bool = False,
        options: SearchOptions | None = None,
    ) -> None:
        self._client = client
        self.options = options or SearchOptions()
        self.embedder = embedder
        self.collection = collection[:1].upper() + collection[1:]
        self.sources_collection = f"{self.collection}Source"
        self.batch_size = batch_size
        self.object_retries = object_retries
        self.embed_calls = 0
        self.write_stats = WriteStats()
        self._owns_client = owns_client
        self._retry = retry or retry_policy(max_retries=3, deadline=60.0, operation="weaviate")
        self._known_tenants: set[str] = set()
        if owns_client:
            single_attempt_reads(client)
        self._call(self._ensure_schema, "create schema")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        embedder: Embedder,
        *,
        skip_init_checks: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> WeaviateStore:
        """Connect as `settings.store` says and open (or create) the collection.

        `skip_init_checks` (default: `store.weaviate_skip_init_checks`) skips the client's
        startup gRPC ping and its PyPI version lookup, which stalls where traffic is dropped.
        """
        store = settings.store
        if skip_init_checks is None:
            skip_init_checks = store.weaviate_skip_init_checks
        policy = retry or retry_policy(max_retries=3, deadline=60.0, operation="weaviate")
        client = _retried(policy, lambda: connect(store, skip_init_checks=skip_init_checks),
                          "connect")
        try:
            from ragloom.tools.stores import search_options

            return cls(client, embedder, collection=store.collection, retry=policy,
                       owns_client=True, options=search_options(settings))
        except BaseException:
            client.close()
            raise

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], operation: str) -> T:
        """Run one client operation: errors mapped to ragloom types, transient ones retried."""
        return _retried(self._retry, fn, operation)

    def _chunks(self, tenant: str) -> Collection[Any, Any]:
        return self._client.collections.use(self.collection).with_tenant(tenant)

    def _sources(self, tenant: str) -> Collection[Any, Any]:
        return self._client.collections.use(self.sources_collection).with_tenant(tenant)

    def _ensure_schema(self) -> None:
        from weaviate.classes.config import DataType, Property, Tokenization

        embedder = self.embedder
        signature = f"ragloom chunks; embedder={embedder.name}; dims={embedder.dimensions}"
        collections = self._client.collections
        if collections.exists(self.collection):
            self._check_signature(collections.use(self.collection).config.get().description)
        else:
            field = Tokenization.FIELD
            self._create(
                self.collection, signature,
                [
                    Property(name="chunk_id", data_type=DataType.TEXT, tokenization=field),
                    Property(name="source", data_type=DataType.TEXT, tokenization=field),
                    Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
                    Property(name="context", data_type=DataType.TEXT,
                             tokenization=Tokenization.WORD),
                    Property(name="title", data_type=DataType.TEXT),
                    Property(name="heading_path", data_type=DataType.TEXT_ARRAY),
                    Property(name="start", data_type=DataType.INT),
                    Property(name="end", data_type=DataType.INT),
                    Property(name="position", data_type=DataType.INT),
                    Property(name="content_hash", data_type=DataType.TEXT, tokenization=field),
                    Property(name="tags", data_type=DataType.TEXT_ARRAY, tokenization=field),
                    Property(name="modified", data_type=DataType.DATE),
                    Property(name="metadata_json", data_type=DataType.TEXT,
                             index_searchable=False, index_filterable=False),
                ],
                vectors=True,
            )
        if not collections.exists(self.sources_collection):
            self._create(
                self.sources_collection, "ragloom sources: content hash per ingested source",
                [
                    Property(name="source", data_type=DataType.TEXT,
                             tokenization=Tokenization.FIELD),
                    Property(name="content_hash", data_type=DataType.TEXT,
                             tokenization=Tokenization.FIELD, index_searchable=False),
                ],
                vectors=False,
            )

    def _create(self, name: str, description: str, properties: list[Any], *, vectors: bool) -> None:
        from weaviate.classes.config import Configure, VectorDistances
        from weaviate.exceptions import UnexpectedStatusCodeError

        try:
            self._client.collections.create(
                name,
                description=description,
                properties=properties,
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE
                    )
                ) if vectors else None,
                inverted_index_config=Configure.inverted_index(bm25_k1=1.2, bm25_b=0.75),
                multi_tenancy_config=Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
                ),
            )
            log.info("weaviate.collection_created", collection=name)
        except UnexpectedStatusCodeError as exc:
            if exc.status_code != 422 or not self._client.collections.exists(name):
                raise  # 422 + exists: another process created it first

    def _check_signature(self, description: str | None) -> None:
        want = f"embedder={self.embedder.name}; dims={self.embedder.dimensions}"
        if description and "embedder=" in description and want not in description:
            raise ConfigError(
                f"Weaviate collection {self.collection} was built with another embedder "
                f"({description!r}), not {want!r}",
                setting="embedder.kind",
                fix="use the same embedder, or set store.collection to a new collection",
            )

    def _tenant_exists(self, tenant: str) -> bool:
        if tenant in self._known_tenants:
            return True
        found = self._call(
            lambda: self._client.collections.use(self.collection).tenants.get_by_names([tenant]),
            "get tenant",
        )
        if tenant in found:
            self._known_tenants.add(tenant)
        return tenant in found

    def _ensure_tenant(self, tenant: str) -> None:
        """Create `tenant` in both collections on its first write."""
        if self._tenant_exists(tenant):
            return
        from weaviate.classes.tenants import Tenant

        for name in (self.collection, self.sources_collection):
            self._call(partial(self._client.collections.use(name).tenants.create,
                               [Tenant(name=tenant)]), "add tenant")
        self._known_tenants.add(tenant)
        log.info("weaviate.tenant_created", collection=self.collection, tenant=tenant)

    # -- writes -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], *, tenant: str | None = None) -> int:
        """Insert or replace chunks by id (UUID = uuid5 of the id); returns how many."""
        chunks = list({c.id: c for c in chunks}.values())
        if not chunks:
            return 0
        name = tenant_name(tenant)
        self._ensure_tenant(name)
        self._write_chunks(chunks, name, content_hash=None)
        hashes = {c.source: str(c.metadata.get("content_hash") or "") for c in chunks}
        self._record_sources(hashes, name, overwrite=False)
        return len(chunks)

    def replace_source(
        self, source: str, content_hash: str, chunks: Sequence[Chunk], *, tenant: str | None = None
    ) -> int:
        """Swap all chunks of `source` for `chunks` and record its content hash.

        New chunks go in first, stale ones are deleted after, the hash is written last.
        """
        chunks = list({c.id: c for c in chunks}.values())
        if any(c.source != source for c in chunks):
            raise StoreError(f"replace_source({source!r}) got chunks of another source")
        name = tenant_name(tenant)
        self._ensure_tenant(name)
        self._write_chunks(chunks, name, content_hash=content_hash)
        keep = {chunk_uuid(c.id) for c in chunks}
        stale = [u for u in self._source_uuids(source, name) if u not in keep]
        self._delete_uuids(stale, name)
        self._record_sources({source: content_hash}, name, overwrite=True)
        return len(chunks)

    def delete(self, source: str, *, tenant: str | None = None) -> int:
        """Remove every chunk of `source` and its source record; returns chunks removed."""
        from weaviate.classes.query import Filter

        name = tenant_name(tenant)
        if not self._tenant_exists(name):
            return 0
        removed = self._delete_where(Filter.by_property("source").equal(source), name)
        self._call(
            lambda: self._sources(name).data.delete_many(
                where=Filter.by_property("source").equal(source)
            ),
            "delete source record",
        )
        return removed

    def _write_chunks(self, chunks: list[Chunk], tenant: str, content_hash: str | None) -> None:
        """Write in batches; raise `StoreWriteError` naming every chunk not stored.

        Rejected objects do not stop the batches after them; a batch whose retries ran out does
        (the cluster is not answering), and the chunks not sent yet are reported with it.
        """
        from weaviate.classes.data import DataObject

        collection = self._chunks(tenant)
        failed: dict[str, str] = {}
        for begin in range(0, len(chunks), self.batch_size):
            batch = chunks[begin:begin + self.batch_size]
            try:
                vectors = self._vectors_for(batch, tenant)
                objects = [
                    DataObject(uuid=chunk_uuid(c.id), properties=_properties(c, content_hash),
                               vector=vector)
                    for c, vector in zip(batch, vectors, strict=True)
                ]
                failed.update(self._insert(collection, objects, [c.id for c in batch]))
            except StoreError as exc:  # auth and config errors are not about these chunks
                failed.update((c.id, str(exc)) for c in chunks[begin:])
                break
        if failed:
            self.write_stats.failed_chunks.extend(failed)
            raise _write_error(failed, chunks)

    def _vectors_for(self, chunks: list[Chunk], tenant: str) -> list[list[float]]:
        """Stored vectors where a chunk's id and text are unchanged; the rest embedded."""
        from weaviate.classes.query import Filter

        where = Filter.by_property("chunk_id").contains_any([c.id for c in chunks])
        fetch = self._chunks(tenant).query.fetch_objects
        stored = self._call(
            partial(fetch, filters=where, limit=len(chunks), include_vector=True,
                    return_properties=["chunk_id", "text", "context"]),
            "read stored vectors",
        )
        known = {
            (o.properties["chunk_id"], o.properties["text"], o.properties.get("context") or ""):
            o.vector.get("default")
            for o in stored.objects
        }
        vectors = [known.get((c.id, c.text, chunk_context(c))) for c in chunks]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            self.embed_calls += 1
            embedded = self.embedder.embed_documents([embed_text(chunks[i]) for i in missing])
            for i, vector in zip(missing, embedded, strict=True):
                vectors[i] = [float(x) for x in vector]
        return [list(v or ()) for v in vectors]  # type: ignore[arg-type]

    def _insert(
        self, collection: Collection[Any, Any], objects: list[Any], ids: list[str]
    ) -> dict[str, str]:
        """Send `objects` (transport retried by the policy, rejected objects sent again up to
        `object_retries` times); returns {id: error} for the objects still not stored."""
        pending = list(range(len(objects)))
        failures: dict[int, str] = {}
        for attempt in range(1 + self.object_retries):
            if attempt:
                self.write_stats.objects_resent += len(pending)
            batch = [objects[i] for i in pending]
            errors = self._send(collection, batch)
            failures = {pending[j]: message for j, message in errors.items()}
            pending = sorted(failures)
            if not pending:
                return {}
            log.warning("weaviate.objects_failed", count=len(pending), attempt=attempt + 1,
                        first_error=failures[pending[0]])
        return {ids[i]: f"rejected after {1 + self.object_retries} attempts: {failures[i]}"
                for i in pending}

    def _send(self, collection: Collection[Any, Any], objects: list[Any]) -> dict[int, str]:
        """One batch under the retry policy, each attempt counted in `write_stats`."""
        stats = self.write_stats

        def attempt() -> dict[int, str]:
            stats.batch_calls += 1
            return _batch_errors(collection, objects)

        before = stats.batch_calls
        try:
            return self._call(attempt, "insert")
        finally:
            attempts = stats.batch_calls - before
            stats.retries += max(0, attempts - 1)
            stats.max_attempts = max(stats.max_attempts, attempts)

    def _record_sources(self, hashes: dict[str, str], tenant: str, *, overwrite: bool) -> None:
        """Write source records; without `overwrite`, an empty hash never replaces a stored one."""
        from weaviate.classes.data import DataObject

        if not overwrite:
            known = self._source_hashes(tenant, list(hashes))
            hashes = {s: h for s, h in hashes.items() if h or s not in known}
        if not hashes:
            return
        objects = [
            DataObject(uuid=source_uuid(s), properties={"source": s, "content_hash": h})
            for s, h in hashes.items()
        ]
        try:
            failed = self._insert(self._sources(tenant), objects, list(hashes))
        except StoreError as exc:  # retries ran out: the records, not the chunks, are missing
            failed = dict.fromkeys(hashes, str(exc))
        if failed:
            raise StoreWriteError(
                f"the source records of {', '.join(sorted(failed))} were not stored "
                f"(their chunks were); re-run the ingest: {next(iter(failed.values()))}",
                failed=failed, sources=list(failed),
            )

    def _source_uuids(self, source: str, tenant: str) -> list[str]:
        from weaviate.classes.query import Filter

        result = self._call(
            lambda: self._chunks(tenant).query.fetch_objects(
                filters=Filter.by_property("source").equal(source),
                limit=MAX_RESULTS, return_properties=["chunk_id"],
            ),
            "list source chunks",
        )
        return [str(o.uuid) for o in result.objects]

    def _delete_uuids(self, uuids: list[str], tenant: str) -> None:
        from weaviate.classes.query import Filter

        for begin in range(0, len(uuids), 1000):
            part = uuids[begin:begin + 1000]
            self._delete_where(Filter.by_id().contains_any(part), tenant)

    def _delete_where(self, where: Any, tenant: str) -> int:
        """delete_many until nothing matches (Weaviate deletes at most 10,000 per call)."""
        removed = 0
        while True:
            result = self._call(
                lambda: self._chunks(tenant).data.delete_many(where=where), "delete"
            )
            removed += int(result.successful)
            if result.successful == 0 or result.matches <= result.successful:
                return removed

    # -- reads --------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        alpha: float = 0.5,
        filters: Filters | None = None,
        tenant: str | None = None,
    ) -> list[Chunk]:
        """Best `k` chunks, best first; `score` is BM25, cosine similarity, or the fused score."""
        if mode not in SEARCH_MODES:
            raise ConfigError(f"unknown search mode {mode!r}", setting="retrieval.mode",
                              fix="use bm25, vector or hybrid")
        name = tenant_name(tenant)
        if k <= 0 or not query.strip() or not self._tenant_exists(name):
            return []
        terms = self.options.query_terms(query)
        if mode == "bm25" and not terms:
            return []
        where = to_weaviate_filter(filters)
        if mode == "hybrid":
            depth = min(max(k, self.options.candidates), MAX_RESULTS)
            bm25 = self._leg(name, " ".join(terms), depth, "bm25", where, filters) if terms else []
            vector = self._leg(name, query, depth, "vector", where, filters)
            by_id = {c.id: c for c in [*bm25, *vector]}
            fused = fuse(self.options.fusion, [(c.id, c.score or 0.0) for c in bm25],
                         [(c.id, c.score or 0.0) for c in vector], alpha,
                         {c.id: c.source for c in by_id.values()})
            out = []
            for chunk_id, score in fused[:k]:
                chunk = by_id[chunk_id]
                chunk.score = score
                out.append(chunk)
            return out
        text = " ".join(terms) if mode == "bm25" else query
        return self._leg(name, text, k, mode, where, filters)

    def _leg(
        self, tenant: str, query: str, k: int, mode: str, where: Any, filters: Filters | None
    ) -> list[Chunk]:
        """One search leg, best first, ties broken by chunk id as in the embedded store."""
        # Fetch a margin beyond k so that equal scores at the cut are broken by chunk id, as in
        # the embedded store, rather than by whatever order the server returns ties in.
        limit = min(k + max(k, 10), MAX_RESULTS)
        result = self._call(lambda: self._query(tenant, query, limit, mode, where), "search")
        chunks = [_to_chunk(o.properties, _score(o.metadata, mode)) for o in result.objects]
        if filters is not None and not filters.empty:
            chunks = [c for c in chunks if filters.matches(c)]
        return sorted(chunks, key=lambda c: (-(c.score or 0.0), c.id))[:k]

    def _query(self, tenant: str, query: str, k: int, mode: str, where: Any) -> Any:
        from weaviate.classes.query import MetadataQuery

        collection = self._chunks(tenant)
        if mode == "bm25":
            weight = float(self.options.context_weight)
            return collection.query.bm25(
                query, query_properties=["text", f"context^{weight:g}"], limit=k, filters=where,
                return_metadata=MetadataQuery(score=True),
            )
        vector = [float(x) for x in self.embedder.embed_query(query)]
        return collection.query.near_vector(
            vector, limit=k, filters=where, return_metadata=MetadataQuery(distance=True)
        )

    def has_reranker(self) -> bool:
        """Whether the chunk collection has a reranker module configured (`reranker-*`)."""
        try:
            config = self._call(
                lambda: self._client.collections.use(self.collection).config.get(), "config"
            )
        except RagloomError:
            return False
        return getattr(config, "reranker_config", None) is not None

    def rerank(
        self, query: str, chunk_ids: Sequence[str], *, tenant: str | None = None
    ) -> dict[str, float]:
        """Scores from the collection's reranker module for these chunks: {chunk id: score}."""
        from weaviate.classes.query import Filter, MetadataQuery, Rerank

        name = tenant_name(tenant)
        ids = list(dict.fromkeys(chunk_ids))
        if not ids or not self._tenant_exists(name):
            return {}
        vector = [float(x) for x in self.embedder.embed_query(query)]
        result = self._call(
            lambda: self._chunks(name).query.near_vector(
                vector, filters=Filter.by_property("chunk_id").contains_any(ids), limit=len(ids),
                rerank=Rerank(prop="text", query=query),
                return_metadata=MetadataQuery(score=True), return_properties=["chunk_id"],
            ),
            "rerank",
        )
        return {
            o.properties["chunk_id"]: float(o.metadata.rerank_score or 0.0)
            for o in result.objects
        }

    def get(self, chunk_ids: Sequence[str], *, tenant: str | None = None) -> list[Chunk]:
        """Chunks by id, in the order asked (missing ids are left out)."""
        from weaviate.classes.query import Filter

        name = tenant_name(tenant)
        ids = list(dict.fromkeys(chunk_ids))
        if not ids or not self._tenant_exists(name):
            return []
        found: dict[str, Chunk] = {}
        fetch = self._chunks(name).query.fetch_objects
        for begin in range(0, len(ids), 1000):
            part = ids[begin:begin + 1000]
            where = Filter.by_property("chunk_id").contains_any(part)
            result = self._call(partial(fetch, filters=where, limit=len(part)), "get")
            found.update((c.id, c) for c in (_to_chunk(o.properties) for o in result.objects))
        return [found[i] for i in chunk_ids if i in found]

    def get_source(self, source: str, *, tenant: str | None = None) -> list[Chunk]:
        """All chunks of one source, in document order."""
        from weaviate.classes.query import Filter

        name = tenant_name(tenant)
        if not self._tenant_exists(name):
            return []
        result = self._call(
            lambda: self._chunks(name).query.fetch_objects(
                filters=Filter.by_property("source").equal(source), limit=MAX_RESULTS
            ),
            "get source",
        )
        chunks = [_to_chunk(o.properties) for o in result.objects]
        return sorted(chunks, key=lambda c: (c.position, c.id))

    def count(self, *, tenant: str | None = None) -> int:
        """Number of chunks in the tenant."""
        name = tenant_name(tenant)
        if not self._tenant_exists(name):
            return 0
        result = self._call(
            lambda: self._chunks(name).aggregate.over_all(total_count=True), "count"
        )
        return int(result.total_count or 0)

    def sources(self, *, tenant: str | None = None) -> dict[str, str]:
        """Every source in the tenant with its content hash."""
        name = tenant_name(tenant)
        if not self._tenant_exists(name):
            return {}
        records = self._call(lambda: list(self._sources(name).iterator()), "list sources")
        pairs = ((o.properties["source"], o.properties.get("content_hash") or "") for o in records)
        return dict(sorted(pairs))

    def _source_hashes(self, tenant: str, sources: Iterable[str]) -> dict[str, str]:
        from weaviate.classes.query import Filter

        wanted = list(sources)
        result = self._call(
            lambda: self._sources(tenant).query.fetch_objects(
                filters=Filter.by_property("source").contains_any(wanted), limit=len(wanted)
            ),
            "get source records",
        )
        return {o.properties["source"]: o.properties.get("content_hash") or ""
                for o in result.objects}

    def tenants(self) -> list[str | None]:
        """Tenants of the chunk collection (the default tenant shows as None)."""
        found = self._call(
            lambda: self._client.collections.use(self.collection).tenants.get(), "list tenants"
        )
        return sorted((None if t == DEFAULT_TENANT else t for t in found),
                      key=lambda t: (t is not None, t or ""))

    def close(self) -> None:
        """Close the client if this store opened it."""
        if self._owns_client:
            _guarded(self._client.close, "close")

    def __enter__(self) -> WeaviateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- conversions ----------------------------------------------------------------------------------


def _write_error(failed: dict[str, str], chunks: Sequence[Chunk]) -> StoreWriteError:
    """One error naming every chunk not stored, with its source."""
    sources = sorted({c.source for c in chunks if c.id in failed})
    listed = ", ".join(list(failed)[:10]) + (f" (and {len(failed) - 10} more)"
                                             if len(failed) > 10 else "")
    reasons = sorted(set(failed.values()))
    return StoreWriteError(
        f"{len(failed)} of {len(chunks)} chunks of {', '.join(sources)} were not stored "
        f"({reasons[0]}{'; ...' if len(reasons) > 1 else ''}): {listed}; re-run the ingest "
        "to store them (writes are idempotent)",
        failed=failed, sources=sources,
    )


_READS = {"grpc_search": "Search", "grpc_aggregate": "Aggregate", "grpc_tenants_get": "TenantsGet"}


def single_attempt_reads(client: WeaviateClient) -> None:
    """Send this client's gRPC reads once: its own `_Retry` would sleep up to 63 s on
    UNAVAILABLE, unseen by the retry policy and past its deadline. A raw gRPC error then
    reaches `map_weaviate_error` (UNAVAILABLE is retryable). Where a client version lacks
    these internals, it keeps its own retry."""
    connection: Any = getattr(client, "_connection", None)
    if connection is None:
        return
    for attribute, method in _READS.items():
        if callable(getattr(type(connection), attribute, None)):
            setattr(connection, attribute, _once(connection, method))


def _once(connection: Any, method: str) -> Callable[[Any], Any]:
    def call(request: Any) -> Any:
        stub = connection.grpc_stub
        if stub is None:  # closed, or never connected: the client's own error path
            return getattr(type(connection), _METHODS[method])(connection, request)
        return getattr(stub, method)(request, metadata=connection.grpc_headers(),
                                     timeout=connection.timeout_config.query)
    return call


_METHODS = {method: attribute for attribute, method in _READS.items()}


def _batch_errors(collection: Collection[Any, Any], objects: list[Any]) -> dict[int, str]:
    """One gRPC BatchObjects call → {index in `objects`: error}.

    The request is built by the client's own batch encoder and sent on its stub once: the
    public `insert_many` wraps this call in a retry of its own on UNAVAILABLE (sleeping 1, 2,
    4, 8 s) that the retry policy could neither see, count nor bound. Where a client version
    lacks these internals, `insert_many` is the fallback.
    """
    from weaviate.collections.classes.batch import _BatchObject
    from weaviate.proto.v1 import batch_pb2

    data = collection.data
    connection: Any = getattr(data, "_connection", None)
    encoder = getattr(data, "_DataCollectionExecutor__batch_grpc", None)
    stub = getattr(connection, "grpc_stub", None)
    if encoder is None or stub is None or not hasattr(encoder, "grpc_objects"):
        return _insert_many_errors(collection, objects)
    internal = [
        _BatchObject(collection=collection.name, vector=o.vector, uuid=str(o.uuid),
                     properties=o.properties, tenant=collection.tenant, references=None, index=i)
        for i, o in enumerate(objects)
    ]
    request = batch_pb2.BatchObjectsRequest(
        objects=encoder.grpc_objects(internal),
        consistency_level=getattr(encoder, "_consistency_level", None),
    )
    reply = stub.BatchObjects(request, metadata=connection.grpc_headers(),
                              timeout=connection.timeout_config.insert)
    return {err.index: err.error for err in reply.errors}


def _insert_many_errors(collection: Collection[Any, Any], objects: list[Any]) -> dict[int, str]:
    """insert_many → {index in `objects`: error}; an all-failed batch is errors, not a raise."""
    from weaviate.exceptions import WeaviateInsertManyAllFailedError

    try:
        result = collection.data.insert_many(objects)
    except WeaviateInsertManyAllFailedError as exc:
        if any(code in str(exc) for code in _TRANSIENT_CODES):
            raise
        message = exc.message.rpartition("Here is the set of all errors: ")[2] or exc.message
        return {i: message for i in range(len(objects))}
    return {i: err.message for i, err in result.errors.items()}


def _properties(chunk: Chunk, content_hash: str | None) -> dict[str, Any]:
    tags = chunk.metadata.get("tags") or []
    props: dict[str, Any] = {
        "chunk_id": chunk.id,
        "source": chunk.source,
        "text": chunk.text,
        "context": chunk_context(chunk),
        "title": chunk.title,
        "heading_path": list(chunk.heading_path),
        "start": int(chunk.start),
        "end": int(chunk.end),
        "position": int(chunk.position),
        "content_hash": content_hash or str(chunk.metadata.get("content_hash") or ""),
        "tags": [str(t) for t in tags] if isinstance(tags, list | tuple) else [str(tags)],
        "metadata_json": json.dumps(chunk.metadata, default=str, sort_keys=True),
    }
    modified = _as_date(chunk.metadata.get("modified"))
    if modified is not None:
        props["modified"] = day_start(modified)
    return props


def _to_chunk(props: dict[str, Any], score: float | None = None) -> Chunk:
    return Chunk(
        id=props["chunk_id"],
        source=props["source"],
        text=props.get("text") or "",
        title=props.get("title") or "",
        heading_path=tuple(props.get("heading_path") or ()),
        start=int(props.get("start") or 0),
        end=int(props.get("end") or 0),
        position=int(props.get("position") or 0),
        metadata=json.loads(props.get("metadata_json") or "{}"),
        score=score,
    )


def _score(metadata: Any, mode: str) -> float | None:
    if mode == "vector":
        return None if metadata.distance is None else 1.0 - float(metadata.distance)
    return None if metadata.score is None else float(metadata.score)
