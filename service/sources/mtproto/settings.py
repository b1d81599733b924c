"""The MTProto source's settings (TGWATCH_MTPROTO_* variables) and the constants behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from service.config import ConfigError

# One account follows at most this many channels by default: Telegram lets a user join 500
# channels (1000 with Premium), and an account near that limit gets CHANNELS_TOO_MUCH on joins.
CHANNELS_PER_ACCOUNT = 500
# A lease on a channel (and on an account) lasts this long unless renewed; a listener that dies
# loses its channels to others within this plus one round. Renewed every third of it, so two
# missed renewals in a row (a Redis hiccup, a stalled loop) still do not lose it.
LEASE_SECONDS = 30.0
# Catch-up after a restart or a disconnect reads at most this many pages of history per channel:
# a gap longer than that (days of a busy channel) is given up, logged, rather than stalling the
# account's other channels; the newest posts are read first.
CATCHUP_PAGES = 10
# Messages per history request: Telegram's own maximum for messages.getHistory.
PAGE_SIZE = 100
# Every channel is re-read from its watermark this often even without a disconnect: Telegram does
# not push every update of big channels reliably, and a history request that finds nothing new
# costs one call. 500 channels every 10 minutes is under one request a second per account.
RESYNC_SECONDS = 600.0
# A flood wait on resolving or joining longer than this hands the account's channels that still
# wait for it to other accounts instead of leaving them unread that long.
FLOOD_HANDOFF_SECONDS = 60.0


class MtprotoSettings(BaseSettings):
    """What `tgwatch listen --source mtproto` and `tgwatch accounts` can be told from outside."""

    model_config = SettingsConfigDict(
        env_prefix="TGWATCH_MTPROTO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    api_id: int | None = Field(default=None, description="app id from my.telegram.org")
    api_hash: SecretStr | None = Field(default=None, description="app hash (secret)")
    session_dir: Path = Field(
        default=Path("data/mtproto"), description="where account sessions are stored (mode 0600)"
    )
    session_key: SecretStr | None = Field(
        default=None, description="passphrase encrypting stored sessions (secret); unset: plain"
    )
    accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="accounts this process runs (default: every session)"
    )
    channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="channels only this source reads, beside TGWATCH_CHANNELS (invite links too)",
    )
    channels_per_account: int = Field(default=CHANNELS_PER_ACCOUNT, ge=1, le=1000)
    lease_seconds: float = Field(default=LEASE_SECONDS, ge=1.0, le=600.0)
    catchup_pages: int = Field(default=CATCHUP_PAGES, ge=1, le=1000)
    page_size: int = Field(default=PAGE_SIZE, ge=1, le=PAGE_SIZE)
    backfill_pages: int = Field(default=0, ge=0, le=100)
    resync_seconds: float = Field(default=RESYNC_SECONDS, ge=1.0)
    flood_handoff_seconds: float = Field(default=FLOOD_HANDOFF_SECONDS, ge=0.0)
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


def load_mtproto_settings(**overrides: object) -> MtprotoSettings:
    """Read the settings; a bad value becomes one ConfigError line naming the variable."""
    try:
        return MtprotoSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "TGWATCH_MTPROTO_" + "_".join(str(part) for part in error["loc"][:1]).upper()
        raise ConfigError(f"{name}: {error['msg']}") from None  # never echo a (secret) input
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
