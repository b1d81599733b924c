"""One account's live updates, from its stream to the writer: batched, albums made one post.

Updates wait in an inbox as the stream delivers them; the feed takes everything waiting at once
(up to ``BATCH_MAX``) and hands each channel's posts to the writer in one call, so a quiet stream
sends each post on its own within milliseconds and a burst goes out in batches instead of one
queue job per post. Album items wait until no new item of their album has come for
``ALBUM_WAIT_SECONDS``; an edited album item, or a batch that could not be handed over, asks the
account to read the channel again (``resync``), so nothing is lost to a failure here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog

from service.core.post import Post
from service.metrics.mtproto import MtprotoMetrics
from service.sources.mtproto.albums import assemble_album
from service.sources.mtproto.client import ChannelEvent, ChannelMessage, ChannelRef, Deletion
from service.sources.mtproto.writer import ChannelWriter, Emission
from service.store.accounts import AccountStore

log = structlog.get_logger(__name__)

# Album items arrive as separate updates within milliseconds; an album is emitted once no new
# item has come for this long (as the bot source does).
ALBUM_WAIT_SECONDS = 1.0
# Updates handed over in one go at most: a burst becomes jobs of up to this many posts, and one
# batch never holds the loop for long.
BATCH_MAX = 500
# The account's "last update" in Redis is written at most this often (every update is too much).
UPDATE_STAMP_SECONDS = 5.0


@dataclass
class Tracked:
    """A channel leased to the account."""

    entry: str
    ref: ChannelRef | None = None
    synced: bool = False  # caught up since the last (re)connect: live posts move the watermark
    live_max: int = 0  # newest id seen live while not synced
    # Held while the channel's posts are handed over, and to give the channel up: its lease is
    # never released between the check that it is ours and its watermark moving.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> str:
        return self.ref.key if self.ref is not None else self.entry


class LiveFeed:
    """``tracked`` and ``by_id`` are the account's channels (by entry, by bare id), read as they
    change; ``resync(tracked, album_item)`` has the account read a channel (or an album) again."""

    def __init__(
        self,
        account: str,
        token: str,
        writer: ChannelWriter,
        store: AccountStore,
        *,
        tracked: dict[str, Tracked],
        by_id: dict[int, Tracked],
        resync: Callable[[Tracked, Post | None], None],
        metrics: MtprotoMetrics | None = None,
    ) -> None:
        self.account = account
        self.token = token
        self.writer = writer
        self.store = store
        self.tracked = tracked
        self.by_id = by_id
        self.resync = resync
        self.metrics = metrics
        self._inbox: asyncio.Queue[tuple[ChannelEvent, float]] = asyncio.Queue()
        self._albums: dict[tuple[str, str], list[Post]] = {}
        self._album_seen: dict[tuple[str, str], float] = {}
        self._album_tasks: set[asyncio.Task[None]] = set()
        self._stamped = 0.0

    def put(self, event: ChannelEvent) -> None:
        """An update arrived (from the stream; never blocks)."""
        self._inbox.put_nowait((event, time.monotonic()))

    async def run(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < BATCH_MAX and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            await self._stamp()
            await self._handle(batch)

    async def _stamp(self) -> None:
        now = time.time()
        if self.metrics is not None:
            self.metrics.updated(self.account, now)
        if now - self._stamped >= UPDATE_STAMP_SECONDS:
            self._stamped = now
            try:
                await self.store.update(self.account, last_update=now)
            except Exception as exc:  # Redis away: the batch below will say more
                log.warning("mtproto_stamp_failed", account=self.account, error=repr(exc))

    async def _handle(self, batch: list[tuple[ChannelEvent, float]]) -> None:
        groups: dict[str, tuple[Tracked, list[tuple[ChannelMessage, float]]]] = {}
        for event, arrived in batch:
            tracked = self.by_id.get(event.channel_id)
            if tracked is None:  # a channel the account is in but another account reads
                continue
            if isinstance(event, Deletion):
                await self._deleted(tracked, event)
            else:
                groups.setdefault(tracked.entry, (tracked, []))[1].append((event, arrived))
        ready: list[tuple[Tracked, Emission]] = []
        for tracked, messages in groups.values():
            try:
                ready.append((tracked, await self._emission(tracked, messages)))
            except Exception as exc:  # Redis or the sink: read the channel again from its mark
                self._failed([tracked], exc)
        try:
            async with AsyncExitStack() as held:  # locks in one order: no two feeds deadlock
                for tracked, _emission in sorted(ready, key=lambda pair: pair[0].entry):
                    await held.enter_async_context(tracked.lock)
                ready = await self._still_ours(ready)
                await self.writer.emit_many([emission for _tracked, emission in ready])
        except Exception as exc:
            self._failed([tracked for tracked, _emission in ready], exc)

    async def _still_ours(
        self, ready: list[tuple[Tracked, Emission]]
    ) -> list[tuple[Tracked, Emission]]:
        """The channels whose lease is still this account's. One whose lease lapsed (a stall
        longer than a lease) hands nothing over: if the account takes it back, it reads the
        channel again from its watermark; if another did, that one reads it."""
        owned = await self.store.owned([t.entry for t, _e in ready], self.account, self.token)
        for tracked, _emission in ready:
            if tracked.entry not in owned:
                log.warning("mtproto_lease_lapsed", account=self.account, channel=tracked.key)
                tracked.synced = False
                self.resync(tracked, None)
        return [(tracked, emission) for tracked, emission in ready if tracked.entry in owned]

    def _failed(self, channels: list[Tracked], exc: Exception) -> None:
        for tracked in channels:
            log.error("mtproto_update_failed", account=self.account, channel=tracked.key,
                      error=repr(exc))  # fmt: skip
            tracked.synced = False
            self.resync(tracked, None)

    async def _deleted(self, tracked: Tracked, event: Deletion) -> None:
        try:
            await self.writer.record_deleted(tracked.key, event.message_ids)
        except Exception as exc:  # the post store is away: the deletion is only logged
            log.error("mtproto_deletion_not_recorded", channel=tracked.key, error=repr(exc))

    async def _emission(
        self, tracked: Tracked, messages: list[tuple[ChannelMessage, float]]
    ) -> Emission:
        """One channel's posts of a batch (albums set aside, rejects handed over) and the
        watermark they may move it to."""
        posts: list[Post] = []
        arrivals: list[float] = []
        newest = max(message.message_id for message, _arrived in messages)
        if not tracked.synced:
            tracked.live_max = max(tracked.live_max, newest)
        for message, arrived in messages:
            if message.rejected is not None:
                await self.writer.reject(message.rejected)
            post = message.post
            if post is None:
                continue  # a service message: only its id counts (the watermark below)
            if post.album_id is not None and message.edited:
                self.resync(tracked, post)
            elif post.album_id is not None:
                self._buffer_album(tracked, post)
            else:
                posts.append(post)
                arrivals.append(arrived)
        # Album items still buffered hold the watermark below them until their album goes out.
        waiting = [
            item.message_id
            for (entry, _album), items in self._albums.items()
            if entry == tracked.entry
            for item in items
        ]
        mark = min([newest, *[i - 1 for i in waiting]]) if tracked.synced else None
        return Emission(tracked.key, posts, mark, arrivals)

    # --- albums --------------------------------------------------------------------------------
    def _buffer_album(self, tracked: Tracked, post: Post) -> None:
        key = (tracked.entry, str(post.album_id))
        self._albums.setdefault(key, []).append(post)
        self._album_seen[key] = time.monotonic()
        if len(self._albums[key]) == 1:
            task = asyncio.create_task(self._album_when_quiet(key))
            self._album_tasks.add(task)
            task.add_done_callback(self._album_tasks.discard)

    async def _album_when_quiet(self, key: tuple[str, str]) -> None:
        while True:  # each new item of the album pushes the end of the wait back
            wait = self._album_seen[key] + ALBUM_WAIT_SECONDS - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        try:
            await self._emit_album(key)
        except Exception as exc:  # Redis or the sink: read the channel again from its mark
            log.error("mtproto_album_failed", channel=key[0], error=repr(exc))

    async def _emit_album(self, key: tuple[str, str]) -> None:
        items = self._albums.pop(key, None)
        self._album_seen.pop(key, None)
        tracked = self.tracked.get(key[0])
        if not items or tracked is None:
            return
        album = assemble_album(items)
        mark = max(album.album_items) if tracked.synced else None
        try:
            async with tracked.lock:
                if not await self._still_ours([(tracked, Emission(tracked.key, [album], mark))]):
                    return
                await self.writer.emit(tracked.key, [album], watermark=mark)
        except Exception:
            tracked.synced = False
            self.resync(tracked, None)
            raise

    async def close(self) -> None:
        """Emit buffered albums now (stopping must not lose them)."""
        for task in list(self._album_tasks):
            task.cancel()
        await asyncio.gather(*self._album_tasks, return_exceptions=True)
        for key in list(self._albums):
            try:
                await self._emit_album(key)
            except Exception as exc:  # Redis away at shutdown: a catch-up will bring it back
                log.error("mtproto_album_lost", channel=key[0], error=repr(exc))
