"""``MtprotoClient`` and ``LoginClient`` over Telethon: the only place that calls Telegram.

Telethon is told never to sleep on a flood wait itself (``flood_sleep_threshold=0``): the
FloodWaitError goes to the account runner, which pauses that kind of request for this account only.
Updates are read raw (``events.Raw``) and mapped with the peers they came with; errors become the
interface's own (``translate``), whose messages name the error, never a session, code or password.
Sessions are Telethon ``StringSession`` strings, kept by ``sessions.SessionVault``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr
from telethon import TelegramClient, errors, events, functions, types
from telethon.sessions import StringSession

from service.sources.mtproto.client import (
    ACCOUNT_BANNED,
    ACCOUNT_DEACTIVATED,
    ACCOUNT_LOGGED_OUT,
    CHANNEL_BANNED,
    CHANNEL_LIMIT,
    CHANNEL_NOT_FOUND,
    CHANNEL_PRIVATE,
    INVITE_INVALID,
    AccountInfo,
    AccountUnusableError,
    ChannelEvent,
    ChannelMessage,
    ChannelRef,
    ChannelUnreadableError,
    DisconnectedError,
    FloodWaitError,
    LoginFailedError,
    MtprotoError,
    PasswordNeededError,
)
from service.sources.mtproto.mapping import (
    Peers,
    channel_ref,
    events_from_update,
    messages_from_history,
)

# Telethon's own reconnection: attempts before it gives up and the runner's backoff takes over.
CONNECTION_RETRIES = 3
# Seconds a request may take before Telethon gives up on it.
REQUEST_TIMEOUT_SECONDS = 20

_UNUSABLE: tuple[tuple[type[Exception], str], ...] = (
    (errors.UserDeactivatedBanError, ACCOUNT_BANNED),
    (errors.UserDeactivatedError, ACCOUNT_DEACTIVATED),
    (errors.AuthKeyUnregisteredError, ACCOUNT_LOGGED_OUT),
    (errors.SessionRevokedError, ACCOUNT_LOGGED_OUT),
    (errors.SessionExpiredError, ACCOUNT_LOGGED_OUT),
    (errors.AuthKeyDuplicatedError, ACCOUNT_LOGGED_OUT),
)
_UNREADABLE: tuple[tuple[type[Exception], str], ...] = (
    (errors.ChannelPrivateError, CHANNEL_PRIVATE),
    (errors.InviteRequestSentError, CHANNEL_PRIVATE),
    (errors.ChannelInvalidError, CHANNEL_NOT_FOUND),
    (errors.UsernameNotOccupiedError, CHANNEL_NOT_FOUND),
    (errors.UsernameInvalidError, CHANNEL_NOT_FOUND),
    (errors.UserBannedInChannelError, CHANNEL_BANNED),
    (errors.ChannelsTooMuchError, CHANNEL_LIMIT),
    (errors.UserChannelsTooMuchError, CHANNEL_LIMIT),
    (errors.InviteHashExpiredError, INVITE_INVALID),
    (errors.InviteHashInvalidError, INVITE_INVALID),
    (errors.InviteHashEmptyError, INVITE_INVALID),
)
_LOGIN: tuple[tuple[type[Exception], str], ...] = (
    (errors.PhoneNumberInvalidError, "phone_invalid"),
    (errors.PhoneNumberBannedError, "phone_banned"),
    (errors.PhoneCodeInvalidError, "code_invalid"),
    (errors.PhoneCodeExpiredError, "code_expired"),
    (errors.PasswordHashInvalidError, "password_invalid"),
)


def translate(exc: BaseException, operation: str) -> BaseException:
    """The interface's error for a Telethon (or network) error raised by ``operation``."""
    if isinstance(exc, MtprotoError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, errors.FloodWaitError | errors.FloodPremiumWaitError):
        return FloodWaitError(float(exc.seconds), operation)
    if isinstance(exc, errors.SessionPasswordNeededError):
        return PasswordNeededError("two-step verification is on")
    for table, kind in ((_UNUSABLE, AccountUnusableError), (_UNREADABLE, ChannelUnreadableError)):
        for error_type, reason in table:
            if isinstance(exc, error_type):
                return kind(reason, name)
    for error_type, reason in _LOGIN:
        if isinstance(exc, error_type):
            return LoginFailedError(reason)
    if isinstance(exc, OSError | errors.ServerError):  # timeouts and resets are OSErrors
        return DisconnectedError(f"{operation}: {name}")
    return exc


def _display(user: Any) -> str:
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return f"@{user.username}" if user.username else (name or f"user {user.id}")


def _client(session: str, api_id: int, api_hash: SecretStr) -> TelegramClient:
    return TelegramClient(
        StringSession(session), api_id, api_hash.get_secret_value(),
        flood_sleep_threshold=0, sequential_updates=True, connection_retries=CONNECTION_RETRIES,
        timeout=REQUEST_TIMEOUT_SECONDS, receive_updates=True,
    )  # fmt: skip


class TelethonClient:
    """One account's connection (see ``client.MtprotoClient``)."""

    def __init__(self, session: SecretStr, api_id: int, api_hash: SecretStr) -> None:
        self._client = _client(session.get_secret_value(), api_id, api_hash)
        self._queue: asyncio.Queue[ChannelEvent] = asyncio.Queue()
        self._client.add_event_handler(self._on_update, events.Raw)

    async def _on_update(self, update: Any) -> None:
        peers = Peers.of(
            (e for e in getattr(update, "_entities", {}).values() if not isinstance(e, types.User)),
            (e for e in getattr(update, "_entities", {}).values() if isinstance(e, types.User)),
        )
        for event in events_from_update(update, peers):
            self._queue.put_nowait(event)

    async def _call(self, operation: str, request: Any) -> Any:
        try:
            return await self._client(request)
        except Exception as exc:
            raise translate(exc, operation) from None

    async def connect(self) -> AccountInfo:
        try:
            await self._client.connect()
            if not await self._client.is_user_authorized():
                raise AccountUnusableError(ACCOUNT_LOGGED_OUT, "session not authorized")
            me = await self._client.get_me()
        except Exception as exc:
            raise translate(exc, "connect") from None
        return AccountInfo(user_id=me.id, display=_display(me))

    async def disconnect(self) -> None:
        await self._client.disconnect()

    async def resolve(self, username: str) -> ChannelRef:
        found = await self._call("resolve", functions.contacts.ResolveUsernameRequest(username))
        if isinstance(found.peer, types.PeerChannel):
            for chat in found.chats:
                ref = channel_ref(chat)
                if ref is not None and ref.channel_id == found.peer.channel_id:
                    return ref
        raise ChannelUnreadableError(CHANNEL_NOT_FOUND, "not a channel")

    async def join(self, channel: ChannelRef) -> ChannelRef:
        peer = types.InputChannel(channel.channel_id, channel.access_hash or 0)
        await self._call("join", functions.channels.JoinChannelRequest(peer))
        return ChannelRef(channel.channel_id, channel.access_hash, channel.username,
                          channel.title, joined=True)  # fmt: skip

    async def join_invite(self, invite_hash: str) -> ChannelRef:
        check = await self._call("join", functions.messages.CheckChatInviteRequest(invite_hash))
        if isinstance(check, types.ChatInviteAlready | types.ChatInvitePeek):
            ref = channel_ref(check.chat)
            if ref is not None and isinstance(check, types.ChatInviteAlready):
                return ChannelRef(ref.channel_id, ref.access_hash, ref.username, ref.title, True)
        joined = await self._call("join", functions.messages.ImportChatInviteRequest(invite_hash))
        for chat in getattr(joined, "chats", ()):
            ref = channel_ref(chat)
            if ref is not None:
                return ChannelRef(ref.channel_id, ref.access_hash, ref.username, ref.title, True)
        raise ChannelUnreadableError(INVITE_INVALID, "the invite is not to a channel")

    async def history(
        self, channel: ChannelRef, *, min_id: int, before_id: int | None, limit: int
    ) -> list[ChannelMessage]:
        request = functions.messages.GetHistoryRequest(
            peer=types.InputPeerChannel(channel.channel_id, channel.access_hash or 0),
            offset_id=before_id or 0, offset_date=None, add_offset=0, limit=limit, max_id=0,
            min_id=min_id, hash=0,
        )  # fmt: skip
        return messages_from_history(await self._call("history", request))

    async def updates(self) -> AsyncIterator[ChannelEvent]:
        """Events as the handler queued them; what was queued before a disconnect comes first."""
        disconnected = asyncio.ensure_future(self._client.disconnected)
        getter: asyncio.Future[ChannelEvent] | None = None
        try:
            while True:
                if not self._queue.empty():
                    yield self._queue.get_nowait()
                    continue
                if disconnected.done():
                    raise DisconnectedError("connection to Telegram lost")
                getter = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getter, disconnected}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            if getter is not None:
                getter.cancel()

    async def log_out(self) -> None:
        try:
            await self._client.connect()
            await self._client.log_out()
        except Exception as exc:
            raise translate(exc, "log_out") from None

    def session(self) -> SecretStr:
        return SecretStr(self._client.session.save())


class TelethonLogin:
    """An interactive login (see ``client.LoginClient``); a new session from scratch."""

    def __init__(self, api_id: int, api_hash: SecretStr) -> None:
        self._client = _client("", api_id, api_hash)

    async def send_code(self, phone: str) -> None:
        try:
            await self._client.connect()
            await self._client.send_code_request(phone)
        except Exception as exc:
            raise translate(exc, "send_code") from None

    async def sign_in(self, phone: str, code: str) -> AccountInfo:
        try:
            user = await self._client.sign_in(phone=phone, code=code)
        except Exception as exc:
            raise translate(exc, "sign_in") from None
        return AccountInfo(user_id=user.id, display=_display(user))

    async def sign_in_password(self, password: str) -> AccountInfo:
        try:
            user = await self._client.sign_in(password=password)
        except Exception as exc:
            raise translate(exc, "sign_in") from None
        return AccountInfo(user_id=user.id, display=_display(user))

    def session(self) -> SecretStr:
        return SecretStr(self._client.session.save())

    async def close(self) -> None:
        await self._client.disconnect()
