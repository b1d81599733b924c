"""Who may use the bot and who is an admin, from TGWATCH_BOT_ALLOWED and TGWATCH_BOT_ADMINS.

An empty allow-list lets everyone in; admins are always allowed and alone may change the preview
poller's channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.config import BotSettings


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
