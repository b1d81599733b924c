"""What can be tuned about delivery, from TGWATCH_DELIVERY_* variables (defaults in constants)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import constants

Schedule = Annotated[tuple[float, ...], NoDecode]


class DeliverySettings(BaseSettings):
    """Delivery settings. Schedules are comma-separated seconds: ``5,30,120,600``."""

    model_config = SettingsConfigDict(
        env_prefix="TGWATCH_DELIVERY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

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
    lease_seconds: float = Field(default=constants.DELIVERY_LEASE_SECONDS, gt=0)
    recovery_interval: int = Field(default=constants.DELIVERY_RECOVERY_INTERVAL_SECONDS, ge=1)

    @field_validator("webhook_schedule", "telegram_schedule", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(item) for item in value.split(",") if item.strip())
        return value

    @field_validator("webhook_schedule", "telegram_schedule")
    @classmethod
    def _non_negative(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("delays must be >= 0")
        return value
