"""Settings: typed values from TGWATCH_* variables, one clear line on a bad value, no secrets."""

from __future__ import annotations

import pytest

from service.config import ConfigError, load_settings


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TGWATCH_REDIS_URL", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.redis_url is None
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.log_format == "console"


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    monkeypatch.setenv("TGWATCH_CHANNELS", "@mfa_russia, durov ,")
    monkeypatch.setenv("TGWATCH_LOG_FORMAT", "json")
    settings = load_settings(_env_file=None)
    assert settings.telegram_api_url == "http://127.0.0.1:8081"
    assert settings.channels == ["mfa_russia", "durov"]
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TGWATCH_LOG_FORMAT", "xml"),
        ("TGWATCH_REDIS_URL", "localhost:6379"),
        ("TGWATCH_WORKERS", "many"),
        ("TGWATCH_TELEGRAM_API_URL", "api.telegram.org"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(name + ":")
    assert "\n" not in message


def test_the_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_TELEGRAM_TOKEN", "123:very-secret")
    settings = load_settings(_env_file=None)
    assert settings.telegram_token is not None
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.model_dump())
