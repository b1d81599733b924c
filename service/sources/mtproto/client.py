"""The one narrow interface the MTProto source uses to talk to Telegram, its data and its errors.

Everything the pool and the account runner know about Telegram goes through ``MtprotoClient``
(and ``LoginClient`` for `tgwatch accounts add`): connect, resolve a username, join, read history
from an id, the update stream, and the errors those raise. ``telethon_client`` implements it over
Telethon; the tests drive the pool with a fake of it. Messages cross this interface already mapped
to posts (``mapping``), so nothing past it sees a Telethon object.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from service.core.formats.result import Rejected
from service.core.post import Post

# Why an account cannot be used any more; the account is marked so and its channels move on.
ACCOUNT_BANNED = "banned"
ACCOUNT_DEACTIVATED = "deactivated"
ACCOUNT_LOGGED_OUT = "logged_out"
UNUSABLE_REASONS = (ACCOUNT_BANNED, ACCOUNT_DEACTIVATED, ACCOUNT_LOGGED_OUT)

# Why one account cannot read one channel; another account may still.
CHANNEL_PRIVATE = "private"
CHANNEL_NOT_FOUND = "not_found"
CHANNEL_BANNED = "banned_in_channel"
CHANNEL_LIMIT = "channels_too_much"
INVITE_INVALID = "invite_invalid"
REFUSAL_REASONS = (
    CHANNEL_PRIVATE, CHANNEL_NOT_FOUND, CHANNEL_BANNED, CHANNEL_LIMIT, INVITE_INVALID
)  # fmt: skip

# What a watch-list entry may be: a public username, or an invite link to a private channel.
_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_INVITE_RE = re.compile(
    r"(?:https?://)?(?:t\.me|telegram\.me)/(?:\+|joinchat/)([A-Za-z0-9_-]{8,64})/?"
    r"|\+([A-Za-z0-9_-]{8,64})"
)
INVITE_PREFIX = "+"


def channel_entry(raw: str) -> str:
    """A watch-list entry in its one spelling: ``name`` (lower case) or ``+<invite hash>``.

    Accepts ``@name``, ``name``, ``t.me/name``, ``t.me/+HASH`` and ``t.me/joinchat/HASH``;
    ValueError for anything else.
    """
    text = raw.strip()
    invite = _INVITE_RE.fullmatch(text)
    if invite:
        return INVITE_PREFIX + (invite.group(1) or invite.group(2))
    name = re.sub(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?", "", text)
    name = name.removeprefix("@").rstrip("/")
    if not _USERNAME_RE.fullmatch(name):
        raise ValueError(f"not a channel username or invite link: {raw.strip()[:60]!r}")
    return name.lower()


def is_invite(entry: str) -> bool:
    return entry.startswith(INVITE_PREFIX)


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A channel as one account can address it: ``access_hash`` belongs to that account."""

    channel_id: int  # the bare id (no -100)
    access_hash: int | None
    username: str | None = None
    title: str | None = None
    joined: bool = False

    @property
    def key(self) -> str:
        """The channel's key in watermarks and stored posts (``Post.channel_key``)."""
        return self.username.lower() if self.username else f"c/{self.channel_id}"

    def to_dict(self) -> dict[str, object]:
        return {
            "channel_id": self.channel_id,
            "access_hash": self.access_hash,
            "username": self.username,
            "title": self.title,
            "joined": self.joined,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ChannelRef:
        access_hash = data.get("access_hash")
        username, title = data.get("username"), data.get("title")
        return cls(
            channel_id=int(str(data["channel_id"])),
            access_hash=None if access_hash is None else int(str(access_hash)),
            username=None if username is None else str(username),
            title=None if title is None else str(title),
            joined=bool(data.get("joined", False)),
        )


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message of a channel: a post, a message set aside (``rejected``), or neither (a
    service message: skipped, but its id still moves the channel's watermark)."""

    channel_id: int  # bare id
    message_id: int
    post: Post | None = None
    rejected: Rejected | None = None
    edited: bool = False  # arrived as an edit


@dataclass(frozen=True, slots=True)
class Deletion:
    """Messages deleted from a channel."""

    channel_id: int  # bare id
    message_ids: tuple[int, ...]


ChannelEvent = ChannelMessage | Deletion


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """Who an account is logged in as (shown by `tgwatch accounts list`; no phone number)."""

    user_id: int
    display: str


# --- errors -------------------------------------------------------------------------------------
class MtprotoError(Exception):
    """Anything the client raises; messages never contain a session, code or password."""


class FloodWaitError(MtprotoError):
    """Telegram asked this account to wait ``seconds`` before repeating this kind of request."""

    def __init__(self, seconds: float, operation: str = "request") -> None:
        super().__init__(f"flood wait of {seconds:.0f} s on {operation}")
        self.seconds = float(seconds)
        self.operation = operation


class AccountUnusableError(MtprotoError):
    """The account is banned, deactivated or logged out: stop using it (``reason``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"account unusable: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


class ChannelUnreadableError(MtprotoError):
    """This account cannot read this channel (``reason``); another account may."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"channel unreadable: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


class DisconnectedError(MtprotoError):
    """The connection to Telegram is down; reconnecting may help."""


class PasswordNeededError(MtprotoError):
    """The account has two-step verification: ask for its password."""


class LoginFailedError(MtprotoError):
    """The phone number, code or password was refused (``reason`` is a short code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"login failed: {reason}")
        self.reason = reason


# --- the interfaces -----------------------------------------------------------------------------
class MtprotoClient(Protocol):
    """One logged-in account's connection to Telegram."""

    async def connect(self) -> AccountInfo:
        """Connect and check the session is authorized; AccountUnusableError, DisconnectedError."""
        ...

    async def disconnect(self) -> None: ...

    async def resolve(self, username: str) -> ChannelRef:
        """A public channel by username; FloodWaitError, ChannelUnreadableError."""
        ...

    async def join(self, channel: ChannelRef) -> ChannelRef:
        """Join a channel (so its updates are pushed); FloodWaitError, ChannelUnreadableError."""
        ...

    async def join_invite(self, invite_hash: str) -> ChannelRef:
        """Join (or find, if already a member) a private channel by invite; as ``join``."""
        ...

    async def history(
        self, channel: ChannelRef, *, min_id: int, before_id: int | None, limit: int
    ) -> list[ChannelMessage]:
        """Up to ``limit`` messages with ``min_id < id < before_id``, newest first."""
        ...

    def updates(self) -> AsyncIterator[ChannelEvent]:
        """New, edited and deleted channel messages as they are pushed; ends (or raises
        DisconnectedError / AccountUnusableError) when the connection is lost."""
        ...

    async def log_out(self) -> None:
        """End the session at Telegram (`tgwatch accounts remove`)."""
        ...

    def session(self) -> SecretStr:
        """The session as it is now (saved back after a clean stop)."""
        ...


class LoginClient(Protocol):
    """An interactive login (`tgwatch accounts add`): phone, code, then maybe a password."""

    async def send_code(self, phone: str) -> None: ...

    async def sign_in(self, phone: str, code: str) -> AccountInfo:
        """PasswordNeededError when the account has two-step verification; LoginFailedError."""
        ...

    async def sign_in_password(self, password: str) -> AccountInfo: ...

    def session(self) -> SecretStr: ...

    async def close(self) -> None: ...
