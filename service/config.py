"""Typed settings from TGWATCH_* variables and an optional .env file, loaded once per process.

``load_settings`` is the one way a process reads its configuration: the main ``Settings`` plus
its parts (``settings.bot``: TGWATCH_BOT_*, ``settings.delivery``: TGWATCH_DELIVERY_*,
``settings.limits``: TGWATCH_LIMIT_*). Any bad
value becomes a ``ConfigError`` whose message is one line naming the variable, never the value
(it may be a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from service import constants
from service.core.secretbox import KEY_MIN_LENGTH, SecretBox, split_keys
from service.core.targets import TargetPolicy

# ISO 639-1 codes the language detector (lingua) knows.
_LINGUA_CODES = (
    "af ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gu he hi hr hu hy id "
    "is it ja ka kk ko la lg lt lv mi mk mn mr ms nb nl nn pa pl pt ro ru sk sl sn so sq sr "
    "st sv sw ta te th tl tn tr ts uk ur vi xh yo zh zu"
)
LANGUAGE_CODES = frozenset(_LINGUA_CODES.split())

Schedule = Annotated[tuple[float, ...], NoDecode]
IdList = Annotated[list[int], NoDecode]
Names = Annotated[list[str], NoDecode]


class ConfigError(Exception):
    """A setting has a bad value; the message names the variable and never shows its value."""


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )


def _split_names(value: object) -> object:
    if isinstance(value, str):
        return [item.strip().lstrip("@") for item in value.split(",") if item.strip()]
    return value


class BotSettings(BaseSettings):
    """Who may use the subscriber bot (TGWATCH_BOT_*): comma-separated Telegram ids."""

    model_config = _config("TGWATCH_BOT_")

    allowed: IdList = Field(
        default_factory=list, description="user or chat ids allowed to use the bot; empty: all"
    )
    admins: IdList = Field(
        default_factory=list, description="user ids allowed to add and remove channels"
    )

    @field_validator("allowed", "admins", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        items = [item for item in value.replace(" ", "").split(",") if item]
        if not all(item.lstrip("-").isdigit() for item in items):
            raise ValueError("must be comma-separated numeric Telegram ids")
        return [int(item) for item in items]


class DeliverySettings(BaseSettings):
    """Delivery settings (TGWATCH_DELIVERY_*). Schedules are comma-separated seconds."""

    model_config = _config("TGWATCH_DELIVERY_")

    webhook_schedule: Schedule = Field(
        default=constants.WEBHOOK_RETRY_SCHEDULE, description="delays between webhook attempts"
    )
    webhook_jitter: float = Field(default=constants.WEBHOOK_RETRY_JITTER, ge=0, le=1)
    webhook_timeout: float = Field(default=constants.WEBHOOK_TIMEOUT_SECONDS, gt=0, le=300)
    webhook_log_max: int = Field(default=constants.WEBHOOK_LOG_MAX, ge=1)
    allow_private_targets: bool = Field(
        default=False, description="let webhooks reach private and link-local addresses"
    )
    allow_loopback_targets: bool = Field(
        default=False, description="let webhooks reach loopback addresses (tests, local demos)"
    )
    telegram_schedule: Schedule = Field(default=constants.TELEGRAM_RETRY_SCHEDULE)
    telegram_timeout: float = Field(default=20.0, gt=0, le=300)
    global_per_second: int = Field(default=constants.TELEGRAM_GLOBAL_PER_SECOND, ge=1)
    per_chat_interval: float = Field(default=constants.TELEGRAM_PER_CHAT_INTERVAL_SECONDS, ge=0)
    group_per_minute: int = Field(default=constants.TELEGRAM_GROUP_PER_MINUTE, ge=1)
    group_window: float = Field(default=60.0, gt=0, description="seconds of the group window")
    limit_margin: float = Field(default=constants.TELEGRAM_LIMIT_MARGIN, ge=0, le=1)
    max_inline_wait: float = Field(default=constants.TELEGRAM_MAX_INLINE_WAIT_SECONDS, ge=0)
    lease_seconds: float = Field(default=constants.DELIVERY_LEASE_SECONDS, gt=0, le=3600)

    def target_policy(self) -> TargetPolicy:
        """Which webhook addresses besides public ones these settings allow."""
        return TargetPolicy(self.allow_private_targets, self.allow_loopback_targets)

    @field_validator("webhook_schedule", "telegram_schedule", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        items = [item.strip() for item in value.split(",") if item.strip()]
        try:
            return tuple(float(item) for item in items)
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,30,120") from None

    @field_validator("webhook_schedule", "telegram_schedule")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 <= delay <= constants.RETRY_DELAY_MAX_SECONDS for delay in value):
            raise ValueError(
                f"delays must be between 0 and {constants.RETRY_DELAY_MAX_SECONDS:.0f} seconds"
            )
        return value


class LimitSettings(BaseSettings):
    """Budgets per owner (an API key's owner, a bot chat) and per request (TGWATCH_LIMIT_*)."""

    model_config = _config("TGWATCH_LIMIT_")

    subscriptions: int = Field(
        default=constants.OWNER_SUBSCRIPTIONS_MAX, ge=1, le=1_000_000,
        description="subscriptions one owner may have",
    )  # fmt: skip
    regexes: int = Field(
        default=constants.OWNER_REGEXES_MAX, ge=0, le=100_000,
        description="regex terms across one owner's subscriptions",
    )  # fmt: skip
    regex_ms: float = Field(
        default=constants.REGEX_COST_MAX_MS, gt=0, le=10_000,
        description="most a regex may cost on a 4,096-character post (ms)",
    )  # fmt: skip
    test_per_minute: int = Field(
        default=constants.TEST_PER_MINUTE, ge=1, le=100_000,
        description="query tests one API key or chat may run per minute",
    )  # fmt: skip
    test_seconds: float = Field(
        default=constants.TEST_SECONDS_MAX, gt=0, le=300,
        description="time one query test may take before it answers with what it has",
    )  # fmt: skip
    test_posts: int = Field(
        default=constants.TEST_POSTS_MAX, ge=1, le=1_000_000,
        description="posts one query test may scan",
    )  # fmt: skip


class MtprotoSettings(BaseSettings):
    """What `tgwatch listen --source mtproto` and `tgwatch accounts` can be told from outside."""

    model_config = _config("TGWATCH_MTPROTO_")

    api_id: int | None = Field(default=None, description="app id from my.telegram.org")
    api_hash: SecretStr | None = Field(default=None, description="app hash (secret)")
    session_dir: Path = Field(
        default=Path("data/mtproto"), description="where account sessions are stored (mode 0600)"
    )
    session_key: SecretStr | None = Field(
        default=None, description="passphrase encrypting stored sessions (secret); unset: plain"
    )
    accounts: Names = Field(
        default_factory=list, description="accounts this process runs (default: every session)"
    )
    channels: Names = Field(
        default_factory=list,
        description="channels only this source reads, beside TGWATCH_CHANNELS (invite links too)",
    )
    channels_per_account: int = Field(default=constants.MTPROTO_CHANNELS_PER_ACCOUNT, ge=1, le=1000)
    lease_seconds: float = Field(default=constants.MTPROTO_LEASE_SECONDS, ge=1.0, le=600.0)
    catchup_pages: int = Field(default=constants.MTPROTO_CATCHUP_PAGES, ge=1, le=1000)
    page_size: int = Field(
        default=constants.MTPROTO_PAGE_SIZE, ge=1, le=constants.MTPROTO_PAGE_SIZE
    )
    backfill_pages: int = Field(default=0, ge=0, le=100)
    resync_seconds: float = Field(default=constants.MTPROTO_RESYNC_SECONDS, ge=1.0)
    flood_handoff_seconds: float = Field(default=constants.MTPROTO_FLOOD_HANDOFF_SECONDS, ge=0.0)
    fallback: bool = Field(default=True, description="poll previews of channels no account reads")

    @field_validator("accounts", "channels", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def configured(self) -> bool:
        """Both app credentials are set (without them no account can connect)."""
        return self.api_id is not None and self.api_hash is not None

    @property
    def tick_seconds(self) -> float:
        """How often leases are renewed and channels (re)assigned: a third of a lease."""
        return self.lease_seconds / 3.0


class Settings(BaseSettings):
    """Everything a tgwatch process can be told from outside (TGWATCH_*)."""

    model_config = _config("TGWATCH_")

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
    secrets_key: SecretStr | None = Field(
        default=None,
        description="keys encrypting webhook secrets in Redis, comma-separated: the first "
        "encrypts, every one decrypts (secret); unset: stored plain",
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
    channels: Names = Field(
        default_factory=list, description="public channels for the web preview poller"
    )
    preview_url: str = Field(default=constants.TELEGRAM_WEB_URL, description="t.me base URL")
    preview_interval: float = Field(
        default=constants.PREVIEW_DEFAULT_INTERVAL_SECONDS, gt=0, le=86400
    )
    preview_backfill_pages: int = Field(default=0, ge=0, le=100)
    preview_concurrency: int = Field(default=constants.PREVIEW_MAX_CONCURRENCY, ge=1, le=64)
    workers: int = Field(default=2, ge=1, le=64)
    batch_size: int = Field(default=constants.BATCH_MAX_POSTS, ge=1, le=10_000)
    batch_wait: float = Field(default=constants.BATCH_MAX_WAIT_SECONDS, gt=0, le=60)
    rules_file: Path | None = Field(
        default=None, description="rules YAML loaded into Redis at start (optional)"
    )
    languages: Names = Field(
        default_factory=lambda: ["ru", "uk", "en", "es", "fr", "de"],
        description="languages the detector tells apart",
    )
    taxonomy_file: Path | None = Field(default=None, description="topics YAML (default: bundled)")
    language_accuracy: Literal["high", "low"] = Field(
        default="high",
        description="lingua's models: high (every n-gram model, ~250 MB) or low (trigrams, ~15 MB)",
    )
    topic_model: Path | None = Field(default=None, description="model from `tgwatch topics train`")
    topic_mode: Literal["cues", "model", "blend"] | None = None
    ner: bool = Field(default=False, description="PER/ORG/LOC recognition (ms per post)")
    ner_languages: Names = Field(default_factory=lambda: ["ru", "en"])
    metrics_host: str = Field(default="127.0.0.1", description="where /metrics, /healthz listen")
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535 - 65,
        description="0 disables; `run` serves its listeners here and worker i on port + 1 + i",
    )
    bot: BotSettings = Field(default_factory=BotSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    mtproto: MtprotoSettings = Field(default_factory=MtprotoSettings)

    def secret_values(self) -> list[str]:
        """The secrets of this configuration, to scrub from every log line."""
        secrets = (self.telegram_token, self.webhook_secret, self.mtproto.api_hash,
                   self.mtproto.session_key)  # fmt: skip
        keys = split_keys(self.secrets_key.get_secret_value()) if self.secrets_key else ()
        return [s.get_secret_value() for s in secrets if s] + list(keys)

    def secret_box(self) -> SecretBox:
        """What seals webhook secrets before they reach Redis (TGWATCH_SECRETS_KEY); without a
        key, the plain box (secrets stored as they are)."""
        return SecretBox.from_setting(self.secrets_key)

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not split_keys(value.get_secret_value()):
            return None
        if any(len(key) < KEY_MIN_LENGTH for key in split_keys(value.get_secret_value())):
            raise ValueError(
                f"each comma-separated key must be at least {KEY_MIN_LENGTH} characters "
                "(e.g. openssl rand -base64 32)"
            )
        return value

    @field_validator("channels", "languages", "ner_languages", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return _split_names(value)

    @field_validator("languages", "ner_languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        codes = [code.lower() for code in value]
        unknown = [code for code in codes if code not in LANGUAGE_CODES]
        if unknown:
            raise ValueError("must be ISO 639-1 codes the detector knows, e.g. ru,uk,en")
        if not codes:
            raise ValueError("needs at least one language")
        return codes

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
        if not value.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
        return value


T = TypeVar("T", bound=BaseSettings)


def _build(cls: type[T], prefix: str, **values: Any) -> T:
    """Build one settings class, turning any error into one line naming the variable."""
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = (prefix + field).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        # Never echo the input: it may be a secret.
        raise ConfigError(f"{name}: {message}") from None
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings of this process (``_env_file=None`` skips the .env file)."""
    env_file = {key: overrides.pop(key) for key in ("_env_file",) if key in overrides}
    bot = overrides.pop("bot", None) or _build(BotSettings, "TGWATCH_BOT_", **env_file)
    delivery = overrides.pop("delivery", None) or _build(
        DeliverySettings, "TGWATCH_DELIVERY_", **env_file
    )
    limits = overrides.pop("limits", None) or _build(LimitSettings, "TGWATCH_LIMIT_", **env_file)
    mtproto = overrides.pop("mtproto", None) or _build(
        MtprotoSettings, "TGWATCH_MTPROTO_", **env_file
    )
    return _build(
        Settings, "TGWATCH_", bot=bot, delivery=delivery, limits=limits, mtproto=mtproto,
        **env_file, **overrides,
    )  # fmt: skip
