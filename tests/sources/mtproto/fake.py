"""A fake Telegram behind the source's own narrow interface (``client.MtprotoClient``).

``FakeTelegram`` holds channels with their history, which accounts joined which, scripted
errors (flood waits, bans, refusals, lost connections) and a log of every call with its time.
``FakeTelegram.client(account)`` is the factory the pool takes; every client of the same world
sees the same channels, and a post published to a channel is pushed to the update stream of
every connected account that joined it, as Telegram does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from service.core.post import CHANNEL_ID_BASE, Post
from service.sources.mtproto.client import (
    CHANNEL_NOT_FOUND,
    CHANNEL_PRIVATE,
    INVITE_INVALID,
    AccountInfo,
    AccountUnusableError,
    ChannelEvent,
    ChannelMessage,
    ChannelRef,
    ChannelUnreadableError,
    Deletion,
    DisconnectedError,
    FloodWaitError,
)

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@dataclass
class Call:
    account: str
    operation: str
    channel: str | None
    at: float  # time.monotonic()


@dataclass
class FakeChannel:
    username: str | None
    channel_id: int
    title: str
    invite: str | None = None
    private: bool = False  # only members read it; joining needs the invite
    messages: dict[int, ChannelMessage] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)  # account -> reason on resolve/join
    last_id: int = 0

    def post(self, text: str, **fields: object) -> Post:
        self.last_id += 1
        return Post(
            channel=self.username or f"c/{self.channel_id}", message_id=self.last_id,
            date=START + timedelta(minutes=self.last_id), text=text,
            channel_id=-(CHANNEL_ID_BASE + self.channel_id), channel_title=self.title,
            source="mtproto", **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    def ref(self, account: str) -> ChannelRef:
        return ChannelRef(self.channel_id, self.channel_id * 31, self.username, self.title,
                          joined=account in self.members)  # fmt: skip


class _Stop:
    """Put in a client's update queue: the stream raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class FakeTelegram:
    def __init__(self) -> None:
        self.channels: dict[str, FakeChannel] = {}
        self.banned: dict[str, str] = {}
        self.floods: dict[tuple[str, str], deque[float]] = {}
        self.failures: dict[tuple[str, str], deque[Exception]] = {}
        self.calls: list[Call] = []
        self.clients: dict[str, FakeClient] = {}
        self.connects: dict[str, int] = {}
        self.history_gate = asyncio.Event()  # cleared by a test: history requests wait for it
        self.history_gate.set()
        self._next_id = 5000

    # --- the world -----------------------------------------------------------------------------
    def add_channel(
        self, username: str | None, *, posts: int = 0, private: bool = False,
        invite: str | None = None, title: str | None = None,
    ) -> FakeChannel:  # fmt: skip
        self._next_id += 1
        channel = FakeChannel(username, self._next_id, title or (username or "private").title(),
                              invite=invite, private=private)  # fmt: skip
        self.channels[(username or "").lower() or f"+{invite}"] = channel
        if invite and username:
            self.channels[f"+{invite}"] = channel
        for number in range(posts):
            self.publish(channel, f"{channel.title} post {number + 1}", push=False)
        return channel

    def channel(self, entry: str) -> FakeChannel:
        return self.channels[entry.lower()]

    def by_id(self, channel_id: int) -> FakeChannel:
        return next(c for c in self.channels.values() if c.channel_id == channel_id)

    def publish(
        self, channel: FakeChannel, text: str, *, push: bool = True, **fields: object
    ) -> Post:
        """A new post: in the history, and pushed to every connected member."""
        post = channel.post(text, **fields)
        self._add(channel, ChannelMessage(channel.channel_id, post.message_id, post=post), push)
        return post

    def service_message(self, channel: FakeChannel, *, push: bool = True) -> int:
        channel.last_id += 1
        self._add(channel, ChannelMessage(channel.channel_id, channel.last_id), push)
        return channel.last_id

    def edit(self, channel: FakeChannel, message_id: int, text: str) -> Post:
        old = channel.messages[message_id].post
        assert old is not None
        post = old.with_changes(text=text, edited=True, edit_date=old.date + timedelta(hours=1))
        message = ChannelMessage(channel.channel_id, message_id, post=post, edited=True)
        channel.messages[message_id] = message
        self._push(channel, message)
        return post

    def delete(self, channel: FakeChannel, *message_ids: int) -> None:
        for message_id in message_ids:
            channel.messages.pop(message_id, None)
        self._push(channel, Deletion(channel.channel_id, tuple(message_ids)))

    def _add(self, channel: FakeChannel, message: ChannelMessage, push: bool) -> None:
        channel.messages[message.message_id] = message
        if push:
            self._push(channel, message)

    def _push(self, channel: FakeChannel, event: ChannelEvent) -> None:
        for account in channel.members:
            client = self.clients.get(account)
            if client is not None and client.online:
                client.queue.put_nowait(event)

    def ban(self, account: str, reason: str = "banned") -> None:
        self.banned[account] = reason
        client = self.clients.get(account)
        if client is not None and client.online:
            client.queue.put_nowait(_Stop(AccountUnusableError(reason, "test")))

    def cut(self, account: str) -> None:
        """Drop the account's connection (it reconnects on its own)."""
        client = self.clients.get(account)
        if client is not None and client.online:
            client.queue.put_nowait(_Stop(DisconnectedError("cut by the test")))

    def flood(self, account: str, operation: str, seconds: float) -> None:
        """The account's next ``operation`` call gets a FloodWait of ``seconds``."""
        self.floods.setdefault((account, operation), deque()).append(seconds)

    def fail(self, account: str, operation: str, error: Exception) -> None:
        self.failures.setdefault((account, operation), deque()).append(error)

    # --- the pool's factory ----------------------------------------------------------------------
    def client(self, account: str) -> FakeClient:
        client = FakeClient(self, account)
        self.clients[account] = client
        return client

    def calls_of(self, account: str, operation: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.account == account
                and (operation is None or c.operation == operation)]  # fmt: skip


class FakeClient:
    """One account's view of the fake world (``client.MtprotoClient``)."""

    def __init__(self, world: FakeTelegram, account: str) -> None:
        self.world = world
        self.account = account
        self.queue: asyncio.Queue[ChannelEvent | _Stop] = asyncio.Queue()
        self.online = False
        self.logged_out = False

    def _call(self, operation: str, channel: str | None = None) -> None:
        self.world.calls.append(Call(self.account, operation, channel, time.monotonic()))
        if self.account in self.world.banned:
            raise AccountUnusableError(self.world.banned[self.account], "test")
        if not self.online and operation != "connect":
            raise DisconnectedError("not connected")
        floods = self.world.floods.get((self.account, operation))
        if floods:
            raise FloodWaitError(floods.popleft(), operation)
        failures = self.world.failures.get((self.account, operation))
        if failures:
            raise failures.popleft()

    async def connect(self) -> AccountInfo:
        self._call("connect")
        self.online = True
        self.world.connects[self.account] = self.world.connects.get(self.account, 0) + 1
        return AccountInfo(user_id=abs(hash(self.account)) % 10**9, display=f"@{self.account}")

    async def disconnect(self) -> None:
        self.online = False

    def _find(self, entry: str, operation: str) -> FakeChannel:
        self._call(operation, entry)
        channel = self.world.channels.get(entry.lower())
        if channel is None:
            raise ChannelUnreadableError(
                INVITE_INVALID if entry.startswith("+") else CHANNEL_NOT_FOUND
            )
        reason = channel.refuse.get(self.account)
        if reason is not None:
            raise ChannelUnreadableError(reason)
        return channel

    async def resolve(self, username: str) -> ChannelRef:
        return self._find(username, "resolve").ref(self.account)

    async def join(self, channel: ChannelRef) -> ChannelRef:
        found = self._find(channel.username or f"+{channel.channel_id}", "join")
        if found.private:
            raise ChannelUnreadableError(CHANNEL_PRIVATE)
        found.members.add(self.account)
        return found.ref(self.account)

    async def join_invite(self, invite_hash: str) -> ChannelRef:
        found = self._find(f"+{invite_hash}", "join")
        found.members.add(self.account)
        return found.ref(self.account)

    async def history(
        self, channel: ChannelRef, *, min_id: int, before_id: int | None, limit: int
    ) -> list[ChannelMessage]:
        found = self.world.by_id(channel.channel_id)
        self._call("history", found.username or found.invite)
        await self.world.history_gate.wait()
        if found.private and self.account not in found.members:
            raise ChannelUnreadableError(CHANNEL_PRIVATE)
        upper = before_id if before_id is not None else found.last_id + 1
        ids = sorted((i for i in found.messages if min_id < i < upper), reverse=True)[:limit]
        return [found.messages[i] for i in ids]

    async def updates(self) -> AsyncIterator[ChannelEvent]:
        while True:
            item = await self.queue.get()
            if isinstance(item, _Stop):
                self.online = False
                raise item.error
            yield item

    async def log_out(self) -> None:
        self.logged_out = True

    def session(self) -> SecretStr:
        return SecretStr(f"fake-session-{self.account}")
