"""Which Telegram chats agreed to receive an API tenant's alerts: one-time link codes and links.

The bot messages a chat only when the chat asked: its own ``/watch``es, or the alerts of a
tenant it linked itself to. A tenant gets a code from the API (``POST /v1/telegram/links``),
hands it to the chat, and someone who may speak for the chat sends ``/link <code>`` to the bot;
only then may the tenant's subscriptions target that chat. A code is good once, for
LINK_CODE_TTL_SECONDS, and only its SHA-256 is stored.

Keys: ``link-code:<sha256 of the code>`` (string: the owner, with a TTL),
``subscriber:<owner>:chats`` (set of linked chat ids) and ``chat-links:<chat>`` (set of owners
linked to the chat). Redeeming is one script: take the code and write both sets at once.
"""

from __future__ import annotations

import hashlib
import secrets

import redis
from redis.client import Pipeline

from service import constants
from service.redis import text

# Returns the owner the code was for (and links it to the chat), or nil when it is unknown.
_REDEEM = """
local owner = redis.call('GET', KEYS[1])
if not owner then return nil end
redis.call('DEL', KEYS[1])
redis.call('SADD', ARGV[2] .. owner .. ARGV[3], ARGV[1])
redis.call('SADD', KEYS[2], owner)
return owner
"""


def _code_key(code: str) -> str:
    digest = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
    return constants.LINK_CODE_PREFIX + digest


def _chats_key(owner: str) -> str:
    return f"{constants.SUBSCRIBER_PREFIX}{owner}:chats"


def _owners_key(chat_id: int) -> str:
    return f"{constants.CHAT_LINKS_PREFIX}{chat_id}"


class ChatLinks:
    """Link codes and the links between API tenants and Telegram chats."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._redeem = client.register_script(_REDEEM)

    def new_code(self, owner: str) -> tuple[str, int]:
        """A new one-time code for ``owner`` and how many seconds it is good for."""
        code = secrets.token_urlsafe(constants.LINK_CODE_BYTES)
        ttl = constants.LINK_CODE_TTL_SECONDS
        self.client.set(_code_key(code), owner, ex=ttl)
        return code, ttl

    def redeem(self, code: str, chat_id: int) -> str | None:
        """Link ``chat_id`` to the owner of ``code`` and use the code up; None when the code is
        unknown, used or expired."""
        if not code or len(code) > constants.LINK_CODE_MAX_CHARS:
            return None
        owner = self._redeem(
            keys=[_code_key(code), _owners_key(chat_id)],
            args=[str(chat_id), constants.SUBSCRIBER_PREFIX, ":chats"],
        )
        return None if owner is None else text(owner)

    def linked(self, owner: str, chat_id: int) -> bool:
        return bool(self.client.sismember(_chats_key(owner), str(chat_id)))

    def chats(self, owner: str) -> list[int]:
        """The chats linked to ``owner``."""
        return sorted(int(text(chat)) for chat in self.client.smembers(_chats_key(owner)))

    def owners(self, chat_id: int) -> list[str]:
        """The owners a chat is linked to."""
        return sorted(text(owner) for owner in self.client.smembers(_owners_key(chat_id)))

    def unlink(self, owner: str, chat_id: int, pipe: Pipeline | None = None) -> None:
        """Remove the link (in ``pipe`` when given: the caller's transaction)."""
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        target.srem(_chats_key(owner), str(chat_id))
        target.srem(_owners_key(chat_id), owner)
        if pipe is None:
            target.execute()
