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
        ("TGWATCH_LANGUAGES", "xx"),
        ("TGWATCH_DELIVERY_WEBHOOK_SCHEDULE", "5,soon,120"),
        ("TGWATCH_DELIVERY_WEBHOOK_SCHEDULE", "5,inf"),
        ("TGWATCH_DELIVERY_LEASE_SECONDS", "-1"),
        ("TGWATCH_BOT_ALLOWED", "abc"),
        ("TGWATCH_BOT_ADMINS", "12,x"),
        ("TGWATCH_METRICS_PORT", "70000"),
        ("TGWATCH_SECRETS_KEY", "too-short-key"),
        ("TGWATCH_SECRETS_KEY", "a-long-enough-first-key, short-second"),
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
    assert value not in message.removeprefix(name + ":")  # a value may be a secret


def test_settings_have_their_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_BOT_ALLOWED", "1, 2,-1003")
    monkeypatch.setenv("TGWATCH_DELIVERY_WEBHOOK_SCHEDULE", "1,2.5")
    settings = load_settings(_env_file=None)
    assert settings.bot.allowed == [1, 2, -1003]
    assert settings.delivery.webhook_schedule == (1.0, 2.5)


def test_a_bad_setting_is_one_line_from_the_command_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from service.cli import cli

    monkeypatch.setenv("TGWATCH_DELIVERY_WEBHOOK_SCHEDULE", "5,soon")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "tgwatch: configuration error: TGWATCH_DELIVERY_WEBHOOK_SCHEDULE: must be comma-separated "
        "seconds, e.g. 5,30,120"
    ]


def test_the_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_TELEGRAM_TOKEN", "123:very-secret")
    settings = load_settings(_env_file=None)
    assert settings.telegram_token is not None
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.model_dump())


def test_the_secrets_key_is_secret_and_names_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.core.secretbox import SEALED_PREFIX

    monkeypatch.setenv("TGWATCH_SECRETS_KEY", "first-key-0123456789, second-key-0123456789")
    settings = load_settings(_env_file=None)
    assert "first-key" not in repr(settings) and "first-key" not in str(settings.model_dump())
    assert {"first-key-0123456789", "second-key-0123456789"} <= set(settings.secret_values())
    box = settings.secret_box()
    sealed = box.seal("whsec_plain-value")
    assert sealed.startswith(SEALED_PREFIX) and "first-key" not in repr(box)
    only_first = load_settings(_env_file=None, secrets_key="first-key-0123456789").secret_box()
    assert only_first.open(sealed) == "whsec_plain-value"
    monkeypatch.setenv("TGWATCH_SECRETS_KEY", " , ")
    assert load_settings(_env_file=None).secret_box().enabled is False  # blank: plain, as unset


def test_a_bad_secrets_key_is_one_line_from_the_command_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from service.cli import cli

    monkeypatch.setenv("TGWATCH_SECRETS_KEY", "sixteen-chars-ok,tiny-secret")  # the 2nd is short
    result = CliRunner().invoke(cli, ["secrets", "rotate"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "tgwatch: configuration error: TGWATCH_SECRETS_KEY: each comma-separated key must be at "
        "least 16 characters (e.g. openssl rand -base64 32)"
    ]
    assert "tiny-secret" not in result.output
