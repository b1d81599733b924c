"""Typed settings from TGWATCH_* environment variables and an optional .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from service import constants


class ConfigError(Exception):
    """A setting has a bad value; the message names the variable and never shows secrets."""


class Settings(BaseSettings):
    """Everything a tgwatch process can be told from outside."""

    model_config = SettingsConfigDict(
        env_prefix="TGWATCH_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    redis_url: str | None = Field(
        default=None, description="Redis URL; unset starts an embedded Redis under data_dir"
    )
    telegram_token: SecretStr | None = Field(default=None, description="Bot API token (secret)")
    telegram_api_url: str = Field(
        default=constants.TELEGRAM_API_URL, description="Bot API base URL (self-hosted servers)"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="secret_token Telegram sends with webhook updates"
    )
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8081, ge=1, le=65535)
    webhook_path: str = "/telegram/webhook"
    webhook_url: str | None = Field(
        default=None, description="public URL given to setWebhook (default: the local address)"
    )
    data_dir: Path = Field(default=Path("data"), description="where the embedded Redis keeps data")
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="public channels for the web preview poller"
    )
    preview_url: str = Field(default=constants.TELEGRAM_WEB_URL, description="t.me base URL")
    preview_interval: float = Field(default=constants.PREVIEW_DEFAULT_INTERVAL_SECONDS, gt=0)
    preview_backfill_pages: int = Field(default=0, ge=0, le=100)
    preview_concurrency: int = Field(default=constants.PREVIEW_MAX_CONCURRENCY, ge=1, le=64)
    workers: int = Field(default=2, ge=1, le=64)
    batch_size: int = Field(default=constants.BATCH_MAX_POSTS, ge=1, le=10_000)
    batch_wait: float = Field(default=constants.BATCH_MAX_WAIT_SECONDS, gt=0, le=60)
    rules_file: Path | None = Field(
        default=None, description="rules YAML loaded into Redis at start (optional)"
    )
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ru", "uk", "en", "es", "fr", "de"],
        description="languages the detector tells apart",
    )
    taxonomy_file: Path | None = Field(default=None, description="topics YAML (default: bundled)")
    topic_model: Path | None = Field(default=None, description="model from `tgwatch topics train`")
    topic_mode: Literal["cues", "model", "blend"] | None = None
    ner: bool = Field(default=False, description="PER/ORG/LOC recognition (ms per post)")
    ner_languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ru", "en"])
    metrics_host: str = Field(default="127.0.0.1", description="where /metrics, /healthz listen")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="0 disables; worker i serves on port + i"
    )

    @field_validator("channels", "languages", "ner_languages", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lstrip("@") for item in value.split(",") if item.strip()]
        return value

    @field_validator("telegram_api_url", "preview_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning any validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "TGWATCH_" + "_".join(str(part) for part in error["loc"][:1]).upper()
        # Never echo the input: it may be a secret.
        raise ConfigError(f"{name}: {error['msg']}") from None
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
