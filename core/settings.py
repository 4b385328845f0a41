"""Typed settings, read once at the edge (CLI, server, app) and passed down.

Sources, highest first: constructor arguments, environment (`RAGLOOM_` prefix, nested with `__`,
e.g. `RAGLOOM_LLM__MODEL`), `.env`, then `ragloom.toml` in the working directory (or the file
named by `RAGLOOM_CONFIG`). `OPENAI_API_KEY` / `OPENAI_BASE_URL` are honoured when the ragloom
ones are unset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Engine = Literal["openai", "extractive"]


class LLMSettings(BaseModel):
    """Chat model reached through the gateway (OpenAI or any OpenAI-compatible server)."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = Field(30.0, gt=0, description="seconds per request")
    max_retries: int = Field(4, ge=0, description="retries after the first attempt")
    deadline: float = Field(120.0, gt=0, description="total seconds for one call, retries included")
    temperature: float = 0.0
    max_tokens: int | None = None
    cache: bool = False
    cache_path: Path | None = Field(
        None, description="SQLite file for the response cache (in memory when unset)"
    )


class EmbedderSettings(BaseModel):
    """Which embedder turns text into vectors."""

    kind: Literal["local", "openai", "hashing"] = "local"
    model: str = "text-embedding-3-small"
    dimensions: int = 384
    batch_size: int = Field(64, ge=1)
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="local model runtime: onnx (int8, fast) when installed, else torch"
    )
    quantize: bool = Field(True, description="onnx backend: int8 weights (else fp32)")
    cache_dir: Path | None = Field(
        None, description="where the exported ONNX model is cached (default ~/.cache/ragloom/onnx)"
    )


class StoreSettings(BaseModel):
    """Where chunks live: one embedded SQLite file, or a Weaviate cluster."""

    kind: Literal["embedded", "weaviate"] = "embedded"
    path: Path = Path(".ragloom/store.db")
    collection: str = "RagloomChunk"
    tenant: str | None = None
    weaviate_url: str | None = None
    weaviate_grpc_port: int = 50051
    weaviate_api_key: SecretStr | None = None
    weaviate_skip_init_checks: bool = Field(
        False, description="skip the client's startup checks (gRPC ping, PyPI version lookup)"
    )
    ann: bool = False


class CheckpointerSettings(BaseModel):
    """Where conversation threads persist."""

    kind: Literal["sqlite", "postgres", "memory"] = "sqlite"
    path: Path = Path(".ragloom/threads.db")
    postgres_url: SecretStr | None = None
    durability: Literal["async", "sync", "exit"] = Field(
        "async", description="LangGraph's checkpoint durability for `ragloom serve` turns: "
        "`exit` writes a turn's state once, when it ends (a turn cut off restarts whole)",
    )


class BudgetSettings(BaseModel):
    """Default per-run limits for graph loops."""

    max_steps: int = Field(24, ge=1)
    max_tokens: int | None = 32_000
    max_seconds: float | None = 120.0
    max_cost_usd: float | None = None
    max_rewrites: int = Field(2, ge=0)


class RetrievalSettings(BaseModel):
    """How the assistant retrieves."""

    mode: Literal["bm25", "vector", "hybrid"] = "hybrid"
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="hybrid: weight of the vector leg")
    k: int = Field(6, ge=1)
    max_chunks_per_source: int = Field(
        1, ge=0, description="assistant: passages one source may fill among its k (0: no cap)"
    )
    chunk_tokens: int = Field(
        800, ge=32, description="chunk size in the model's word pieces (the vector reads the "
        "first 256 with the context line, BM25 all of it)"
    )
    chunk_overlap: int = Field(64, ge=0)
    fusion: Literal["relative", "rrf", "document"] = "relative"
    candidates: int = Field(200, ge=1, description="hybrid: chunks fetched per leg")
    stopwords: bool = Field(False, description="drop stop words from BM25 queries")
    context_weight: float = Field(
        1.0, ge=0.0, description="BM25F weight of the title/heading field (text weighs 1)"
    )
    reranker: Literal["auto", "none", "llm", "cross-encoder", "weaviate", "semantic"] = "auto"
    cross_encoder_model: str | None = Field(
        None, description="a sentence-transformers CrossEncoder (local path or name)"
    )
    rerank_depth: int = Field(20, ge=1, description="fused chunks the reranker sees")


class PromptSettings(BaseModel):
    """Compiled DSPy artefacts: where they live and whether graphs load them."""

    compiled_dir: Path | None = None
    use_compiled: bool = True
    pinned: dict[str, str] = Field(default_factory=dict, description="module -> artefact hash")


class AssistantSettings(BaseModel):
    """How the assistant graph keeps threads and asks for review."""

    review: list[Literal["query", "passages", "answer", "clarify"]] = Field(
        default_factory=list, description="interrupt() review points on for every run"
    )
    max_messages: int = Field(100, ge=2, description="messages a thread's checkpoint keeps")
    history_turns: int = Field(6, ge=0, description="earlier turns the roles see")


class Settings(BaseSettings):
    """All of ragloom's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RAGLOOM_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    engine: Literal["auto", "openai", "extractive"] = "auto"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    checkpointer: CheckpointerSettings = Field(default_factory=CheckpointerSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    assistant: AssistantSettings = Field(default_factory=AssistantSettings)
    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("RAGLOOM_CONFIG", "ragloom.toml"))
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @model_validator(mode="after")
    def _openai_fallbacks(self) -> Settings:
        if self.llm.api_key is None and os.environ.get("OPENAI_API_KEY"):
            self.llm.api_key = SecretStr(os.environ["OPENAI_API_KEY"])
        if self.llm.base_url is None and os.environ.get("OPENAI_BASE_URL"):
            self.llm.base_url = os.environ["OPENAI_BASE_URL"]
        from ragloom.core.settings_check import check_secrets

        check_secrets(self)  # a secret too short to redact is refused, not logged
        return self

    @property
    def resolved_engine(self) -> Engine:
        """`openai` when a key or base URL is configured (or asked for), else `extractive`."""
        if self.engine != "auto":
            return self.engine
        if self.llm.api_key is not None or self.llm.base_url:
            return "openai"
        return "extractive"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, `.env` and `ragloom.toml`, with explicit overrides.
    Unknown `RAGLOOM_*` / toml names are warned about (one line each, with the closest valid
    name); an invalid value raises one `ConfigError` naming the setting."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from ragloom.core.settings_check import config_error, source_error, warn_unknown_keys

    warn_unknown_keys(Settings)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error(exc) from None
    except SettingsError as exc:
        raise source_error(exc) from None


class ApiKeySettings(BaseModel):
    """One bearer API key of `ragloom serve` and the tenant whose documents and threads it sees."""

    key: SecretStr = Field(..., min_length=16, description="the bearer token clients send")
    tenant: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ServerSettings(BaseModel):
    """`ragloom serve`: API keys (each mapped to a tenant) and request limits.

    In the environment: `RAGLOOM_SERVER__API_KEYS='[{"key": "...", "tenant": "acme"}]'`. With no
    keys the server runs unauthenticated and refuses to bind a non-loopback address.
    """

    api_keys: list[ApiKeySettings] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest JSON request body")
    max_upload_bytes: int = Field(10_485_760, ge=1024, description="largest /v1/ingest upload")
    max_question_chars: int = Field(8000, ge=1)
    max_thread_id_chars: int = Field(128, ge=8, le=512)


Settings.model_rebuild()  # `server` names ServerSettings, defined after Settings
