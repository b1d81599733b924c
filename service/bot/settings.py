"""Who may use the bot and who is an admin: TGWATCH_BOT_ALLOWED and TGWATCH_BOT_ADMINS.

Both are comma-separated Telegram ids (users or chats). An empty allow-list lets everyone in;
admins are always allowed and alone may change the preview poller's channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TGWATCH_BOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    allowed: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="user or chat ids allowed to use the bot; empty: all"
    )
    admins: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="user ids allowed to add and remove channels"
    )

    @field_validator("allowed", "admins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(item) for item in value.replace(" ", "").split(",") if item]
        return value


@dataclass(frozen=True, slots=True)
class BotAccess:
    allowed: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: BotSettings) -> BotAccess:
        return cls(frozenset(settings.allowed), frozenset(settings.admins))

    def allows(self, user_id: int | None, chat_id: int | None) -> bool:
        if not self.allowed:
            return True
        return bool({user_id, chat_id} & (self.allowed | self.admins))

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admins
