"""Settings: sources and their precedence, OpenAI fallbacks, engine resolution, test settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError
from ragloom.core.settings import Settings, load_settings
from ragloom.core.testing import TEST_API_KEY, make_test_settings


def test_defaults_without_any_source_pick_the_extractive_engine() -> None:
    settings = load_settings()
    assert settings.llm.model == "gpt-4o-mini"
    assert settings.llm.api_key is None
    assert settings.resolved_engine == "extractive"


def test_environment_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_LLM__MODEL", "gpt-4.1-mini")
    monkeypatch.setenv("RAGLOOM_LLM__TIMEOUT", "7.5")
    monkeypatch.setenv("RAGLOOM_STORE__KIND", "weaviate")
    settings = load_settings()
    assert settings.llm.model == "gpt-4.1-mini"
    assert settings.llm.timeout == 7.5
    assert settings.store.kind == "weaviate"


def test_dotenv_file_in_working_directory() -> None:
    Path(".env").write_text("RAGLOOM_LLM__MODEL=from-dotenv\nRAGLOOM_BUDGET__MAX_STEPS=5\n")
    settings = load_settings()
    assert settings.llm.model == "from-dotenv"
    assert settings.budget.max_steps == 5


def test_toml_file_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("ragloom.toml").write_text(
        '[llm]\nmodel = "from-toml"\ntemperature = 0.3\n[retrieval]\nk = 9\n'
    )
    assert load_settings().llm.model == "from-toml"
    Path(".env").write_text("RAGLOOM_LLM__MODEL=from-dotenv\n")
    assert load_settings().llm.model == "from-dotenv"
    monkeypatch.setenv("RAGLOOM_LLM__MODEL", "from-env")
    settings = load_settings()
    assert settings.llm.model == "from-env"
    assert settings.llm.temperature == 0.3  # other toml keys still apply
    assert settings.retrieval.k == 9
    assert load_settings(llm={"model": "from-args"}).llm.model == "from-args"


def test_toml_named_by_ragloom_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('engine = "extractive"\n[llm]\nmodel = "named"\n')
    monkeypatch.setenv("RAGLOOM_CONFIG", str(config))
    assert load_settings().llm.model == "named"


def test_openai_api_key_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-env")
    settings = load_settings()
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-from-openai-env"
    assert settings.resolved_engine == "openai"
    monkeypatch.setenv("RAGLOOM_LLM__API_KEY", "sk-from-ragloom-env")
    assert load_settings().llm.api_key.get_secret_value() == "sk-from-ragloom-env"  # type: ignore[union-attr]


def test_openai_base_url_fallback_selects_openai_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    settings = load_settings()
    assert settings.llm.base_url == "http://127.0.0.1:8000/v1"
    assert settings.resolved_engine == "openai"


def test_explicit_engine_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-some-key-123")
    assert load_settings(engine="extractive").resolved_engine == "extractive"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert load_settings(engine="openai").resolved_engine == "openai"


def test_api_key_is_secret_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_LLM__API_KEY", "sk-do-not-print-me")
    settings = load_settings()
    assert "sk-do-not-print-me" not in repr(settings)
    assert "sk-do-not-print-me" not in settings.model_dump_json()


def test_invalid_value_is_one_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAGLOOM_LLM__TIMEOUT", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    assert info.value.setting == "llm.timeout"
    assert "greater than 0" in text and "'-1'" in text and "RAGLOOM_LLM__TIMEOUT" in text
    monkeypatch.delenv("RAGLOOM_LLM__TIMEOUT")
    Path("ragloom.toml").write_text('[store]\nkind = "sqlite"\n')
    with pytest.raises(ConfigError, match=r"store\.kind: Input should be 'embedded' or 'weaviate'"):
        load_settings()


def test_a_rejected_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "not-a-valid-server-key"
    monkeypatch.setenv("RAGLOOM_SERVER__API_KEYS", f'[{{"key": "{key[:9]}", "tenant": "a"}}]')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "server.api_keys.0.key"
    assert key[:9] not in str(info.value)


@pytest.mark.parametrize("source", ["RAGLOOM_LLM__API_KEY", "OPENAI_API_KEY"])
def test_a_secret_too_short_to_redact_is_refused(
    monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.setenv(source, "abcde")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "llm.api_key"
    assert "too short" in str(info.value) and "abcde" not in str(info.value)
    monkeypatch.setenv(source, "abcdef")
    assert load_settings().llm.api_key is not None


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ragloom.settings"]


def test_unknown_names_are_warned_with_the_closest_valid_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAGLOOM_LLM__MODLE", "x")
    monkeypatch.setenv("RAGLOOM_LOG_LEVL", "DEBUG")
    monkeypatch.setenv("RAGLOOM_LMM__MODEL", "x")
    monkeypatch.setenv("RAGLOOM_CONFIG", "ragloom.toml")  # not a setting, but known
    monkeypatch.setenv("RAGLOOM_LLM__MODEL", "fine")
    Path(".env").write_text("RAGLOOM_EMBEDER__KIND=hashing\n")
    Path("ragloom.toml").write_text(
        '[llm]\nmodle = "x"\ntimeout = 3\n[retrival]\nk = 3\n'
        '[prompts.pinned]\nanswerer = "any module name is fine here"\n'
    )
    with caplog.at_level("WARNING", logger="ragloom.settings"):
        settings = load_settings()
    assert settings.llm.timeout == 3 and settings.llm.model == "fine"
    assert sorted(_warnings(caplog)) == sorted([
        "unknown setting RAGLOOM_LLM__MODLE (in environment) is ignored; "
        "did you mean RAGLOOM_LLM__MODEL?",
        "unknown setting RAGLOOM_LOG_LEVL (in environment) is ignored; "
        "did you mean RAGLOOM_LOG_LEVEL?",
        "unknown setting RAGLOOM_LMM__MODEL (in environment) is ignored; "
        "did you mean RAGLOOM_LLM__MODEL?",
        "unknown setting RAGLOOM_EMBEDER__KIND (in .env) is ignored; "
        "did you mean RAGLOOM_EMBEDDER__KIND?",
        "unknown setting llm.modle (in ragloom.toml) is ignored; did you mean llm.model?",
        "unknown setting retrival (in ragloom.toml) is ignored; did you mean retrieval?",
    ])


def test_known_names_give_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAGLOOM_STORE__WEAVIATE_SKIP_INIT_CHECKS", "true")
    monkeypatch.setenv("RAGLOOM_PROMPTS__PINNED", '{"answerer": "abc"}')
    Path("ragloom.toml").write_text('engine = "extractive"\n[budget]\nmax_steps = 3\n')
    with caplog.at_level("WARNING", logger="ragloom.settings"):
        load_settings()
    assert _warnings(caplog) == []


def test_make_test_settings_points_everything_at_tmp(tmp_path: Path) -> None:
    offline = make_test_settings(tmp_path)
    assert offline.resolved_engine == "extractive"
    assert offline.embedder.kind == "hashing"
    assert offline.store.path.parent == tmp_path
    assert offline.checkpointer.path.parent == tmp_path

    online = make_test_settings(tmp_path, base_url="http://127.0.0.1:9/v1",
                                llm={"model": "m"}, retrieval={"k": 3})
    assert isinstance(online, Settings)
    assert online.resolved_engine == "openai"
    assert online.llm.base_url == "http://127.0.0.1:9/v1"
    assert online.llm.api_key is not None
    assert online.llm.api_key.get_secret_value() == TEST_API_KEY
    assert online.llm.model == "m"
    assert online.llm.deadline <= 10  # short by default, merged not replaced
    assert online.retrieval.k == 3


def test_an_unparsable_json_value_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_SERVER__API_KEYS", "[{not json, key-1234567890abcdef")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "server"
    assert "RAGLOOM_SERVER__API_KEYS" in str(info.value) and "\n" not in str(info.value)
    assert "key-1234567890abcdef" not in str(info.value)
