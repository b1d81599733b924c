"""One account at work: its connection and update stream, and the channels the pool leased to it.

A channel assigned to the account is resolved (from the cache in Redis when it can be) and
joined, then caught up from its watermark: history is read newest first, at most ``catchup_pages``
pages, and emitted oldest first, albums made one post. Live updates of the account's channels are
emitted as they arrive; while a channel catches up they do not move its watermark, so a gap behind
them is never skipped. After a reconnect every channel catches up again, and every
``resync_seconds`` too. Requests run one at a time from a work list; a flood wait pauses that kind
of request (resolve/join or history) for the seconds Telegram gave, the rest goes on, and channels
still waiting to be joined are handed back to the pool when the wait is long.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from service.config import MtprotoSettings
from service.core.post import Post
from service.metrics.mtproto import MtprotoMetrics
from service.sources.mtproto.albums import assemble_album, group_albums
from service.sources.mtproto.client import (
    CHANNEL_LIMIT,
    AccountUnusableError,
    ChannelRef,
    ChannelUnreadableError,
    DisconnectedError,
    FloodWaitError,
    MtprotoClient,
    is_invite,
)
from service.sources.mtproto.history import album_around, newest_id, read_gap
from service.sources.mtproto.live import LiveFeed, Tracked
from service.sources.mtproto.tasks import cancel_and_wait
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountStore

log = structlog.get_logger(__name__)

JOIN, HISTORY = "join", "history"
# Which work a FloodWaitError on an operation pauses.
FLOOD_KIND = {"resolve": JOIN, "join": JOIN, "history": HISTORY}
# Reconnect after a lost connection from 1 s, doubling to a minute: an outage must not turn into
# a tight loop, and recovery should be noticed within a minute.
RECONNECT_MIN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 60.0
# Work that failed for another reason (Redis, the sink) is tried again after this long, while the
# account's other channels go on; a lost connection pauses all work this long before retrying.
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Work:
    kind: str
    entry: str
    album: Post | None = None  # an edited album item: rebuild its album


class AccountRunner:
    """Runs ``client`` for account ``name`` until stopped or found unusable."""

    def __init__(
        self,
        name: str,
        token: str,
        client: MtprotoClient,
        *,
        writer: ChannelWriter,
        store: AccountStore,
        settings: MtprotoSettings,
        metrics: MtprotoMetrics | None = None,
        on_stop: Callable[[MtprotoClient], Any] | None = None,
    ) -> None:
        self.name = name
        self.token = token
        self.client = client
        self.writer = writer
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.on_stop = on_stop
        self.unusable: str | None = None
        self.full = False  # Telegram refused a join: too many channels
        self.tracked: dict[str, Tracked] = {}
        self.acquired_at: dict[str, float] = {}  # entry -> when the pool gave it (monotonic)
        self._by_id: dict[int, Tracked] = {}
        self._work: deque[Work] = deque()
        self._queued: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        self._flood_until: dict[str, float] = {}
        self._retries: set[asyncio.TimerHandle] = set()
        self.feed = LiveFeed(name, token, writer, store, tracked=self.tracked, by_id=self._by_id,
                             resync=self._resync, metrics=metrics)  # fmt: skip

    # --- what the pool asks ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._online.is_set()

    def accepts_new(self) -> bool:
        """Connected, usable, and not serving a flood wait on joins."""
        flooded = self._flood_until.get(JOIN, 0.0) > time.monotonic()
        return self.connected and self.unusable is None and not flooded and not self.full

    def stranded(self) -> list[str]:
        """Channels waiting to be joined behind a flood wait on joins longer than the hand-off
        limit: the pool gives them to accounts that are free."""
        left = self._flood_until.get(JOIN, 0.0) - time.monotonic()
        return self.pending() if left > self.settings.flood_handoff_seconds else []

    def pending(self) -> list[str]:
        """Channels assigned but not joined yet."""
        return [entry for entry, tracked in self.tracked.items() if tracked.ref is None]

    def assign(self, entry: str) -> None:
        if entry in self.tracked:
            return
        self.tracked[entry] = Tracked(entry)
        self.acquired_at[entry] = time.monotonic()
        self._queue(Work(JOIN, entry))
        log.info("mtproto_channel_assigned", account=self.name, channel=entry)

    async def release(self, entry: str) -> None:
        """Give a channel up: its lease back, after any hand-over of its posts in progress."""
        tracked = self.tracked.get(entry)
        if tracked is None:
            return
        async with tracked.lock:
            await self.store.release_channel(entry, self.name, self.token)
            self.drop(entry)

    def drop(self, entry: str) -> None:
        self.acquired_at.pop(entry, None)
        tracked = self.tracked.pop(entry, None)
        if tracked is not None and tracked.ref is not None:
            self._by_id.pop(tracked.ref.channel_id, None)
            if self.metrics is not None:
                self.metrics.source(tracked.key, None)
        self._queued = {item for item in self._queued if item[1] != entry}

    # --- the service ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._connection_loop()),
            asyncio.create_task(self._work_loop()),
            asyncio.create_task(self._resync_loop()),
            asyncio.create_task(self.feed.run()),
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([*tasks, stopper])
            for retry in self._retries:
                retry.cancel()
            await self.feed.close()
            self._online.clear()
            try:
                await self.client.disconnect()
            except Exception as exc:  # shutting down: nothing to do but say so
                log.warning("mtproto_disconnect_failed", account=self.name, error=repr(exc))
            if self.on_stop is not None and self.unusable is None:
                self.on_stop(self.client)
            if self.metrics is not None:
                self.metrics.forget_account(self.name)
                for tracked in self.tracked.values():
                    self.metrics.source(tracked.key, None)

    async def _connection_loop(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                info = await self.client.connect()
                await self._set_online(True, display=info.display, user_id=info.user_id)
                delay = RECONNECT_MIN_SECONDS
                for tracked in self.tracked.values():  # whatever came while away: catch up
                    tracked.synced = False
                    if tracked.ref is not None:
                        self._queue(Work(HISTORY, tracked.entry))
                async for event in self.client.updates():
                    self.feed.put(event)
                raise DisconnectedError("the update stream ended")
            except AccountUnusableError as exc:
                await self._become_unusable(exc)
                return
            except (DisconnectedError, OSError) as exc:
                await self._set_online(False, error=str(exc))
                log.warning("mtproto_disconnected", account=self.name, error=str(exc),
                            retry_in=round(delay, 1))  # fmt: skip
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for tracked in list(self.tracked.values()):
                if tracked.ref is not None:
                    self._queue(Work(HISTORY, tracked.entry))

    # --- requests, one at a time ------------------------------------------------------------------
    def _queue(self, work: Work, *, front: bool = False) -> None:
        if work.album is None:
            if (work.kind, work.entry) in self._queued:
                return
            self._queued.add((work.kind, work.entry))
        if front:
            self._work.appendleft(work)
        else:
            self._work.append(work)
        self._wake.set()

    def _next(self) -> tuple[Work | None, float]:
        """The first work whose kind is not paused, or (None, seconds until one may be)."""
        now = time.monotonic()
        for index, work in enumerate(self._work):
            if self._flood_until.get(work.kind, 0.0) <= now:
                del self._work[index]
                self._queued.discard((work.kind, work.entry))
                return work, 0.0
        ends = [until - now for until in self._flood_until.values() if until > now]
        return None, min(ends, default=RECONNECT_MAX_SECONDS)

    async def _work_loop(self) -> None:
        while True:
            await self._online.wait()
            work, wait = self._next()
            if work is None:
                self._wake.clear()
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    self._flood_over()
                continue
            tracked = self.tracked.get(work.entry)
            if tracked is None:
                continue
            try:
                if work.kind == JOIN:
                    await self._join(tracked)
                elif work.album is not None:
                    await self._album_edit(tracked, work.album)
                else:
                    await self._catch_up(tracked)
            except FloodWaitError as exc:
                await self._flooded(work, exc)
            except ChannelUnreadableError as exc:
                await self._refused(tracked, exc.reason)
            except AccountUnusableError as exc:
                await self._become_unusable(exc)
                return
            except (DisconnectedError, OSError) as exc:
                log.warning("mtproto_request_failed", account=self.name, channel=work.entry,
                            error=str(exc))  # fmt: skip
                self._queue(work, front=True)
                await asyncio.sleep(RETRY_SECONDS)
            except Exception as exc:  # Redis or the sink: this channel waits, the others go on
                log.error("mtproto_work_failed", account=self.name, channel=work.entry,
                          kind=work.kind, error=repr(exc))  # fmt: skip
                await self._note_failure(tracked, repr(exc))
                self._retry_later(work)

    async def _join(self, tracked: Tracked) -> None:
        cached = await self.store.cached_ref(self.name, tracked.entry)
        ref = None if cached is None else ChannelRef.from_dict(cached)
        if ref is None:
            if is_invite(tracked.entry):
                ref = await self.client.join_invite(tracked.entry[1:])
            else:
                ref = await self.client.resolve(tracked.entry)
            await self.store.cache_ref(self.name, tracked.entry, ref.to_dict())
        if not ref.joined:
            ref = await self.client.join(ref)
            await self.store.cache_ref(self.name, tracked.entry, ref.to_dict())
        if tracked.entry not in self.tracked:  # dropped while we waited
            return
        tracked.ref = ref
        self._by_id[ref.channel_id] = tracked
        await self.writer.show_activity(ref.key)
        self._queue(Work(HISTORY, tracked.entry))

    async def _catch_up(self, tracked: Tracked) -> None:
        assert tracked.ref is not None
        key = tracked.key
        watermark = await self.writer.channels.watermark(key)
        pages = self.settings.backfill_pages if watermark is None else self.settings.catchup_pages
        if watermark is None and pages == 0:
            # First sight of the channel and no backfill asked: start from its newest post.
            start = max(await newest_id(self.client, tracked.ref), tracked.live_max)
            await self.writer.move_watermark(key, start)
            tracked.synced = True
            await self.writer.healthy(key)
            return
        gap = await read_gap(self.client, tracked.ref, watermark or 0, pages=pages,
                             page_size=self.settings.page_size)  # fmt: skip
        if not gap.complete and watermark is not None:
            log.warning("mtproto_gap_unfilled", account=self.name, channel=key, after=watermark,
                        before=gap.before, pages=pages)  # fmt: skip
        async with tracked.lock:
            if not await self._holds(tracked):  # shed or lost while reading: others read it
                return
            for message in gap.messages:
                if message.rejected is not None:
                    await self.writer.reject(message.rejected)
            posts = group_albums([m.post for m in gap.messages if m.post is not None])
            ids = [m.message_id for m in gap.messages]
            newest = max([*ids, watermark or 0, tracked.live_max])
            await self.writer.emit(key, posts, watermark=newest or None)
            tracked.synced = True
        await self.writer.healthy(key)
        log.info("mtproto_caught_up", account=self.name, channel=key, posts=len(posts),
                 watermark=newest)  # fmt: skip

    async def _album_edit(self, tracked: Tracked, item: Post) -> None:
        """An album item was edited: read its album around it and emit the album again."""
        assert tracked.ref is not None
        items = await album_around(self.client, tracked.ref, item)
        async with tracked.lock:
            if not await self._holds(tracked):
                return
            album = assemble_album(items, edited=True)
            await self.writer.emit(tracked.key, [album], watermark=None)

    # --- failures ---------------------------------------------------------------------------------
    async def _flooded(self, work: Work, exc: FloodWaitError) -> None:
        kind = FLOOD_KIND.get(exc.operation, work.kind)
        self._flood_until[kind] = time.monotonic() + exc.seconds
        self._queue(work, front=True)
        log.warning("mtproto_flood_wait", account=self.name, operation=exc.operation,
                    seconds=exc.seconds, channel=work.entry)  # fmt: skip
        if self.metrics is not None:
            self.metrics.flood(self.name, exc.operation, exc.seconds)
        until = time.time() + exc.seconds
        await self.store.update(
            self.name, flood_until=until, flood_seconds=exc.seconds, flood_operation=exc.operation
        )
        for entry in self.stranded():  # let accounts that are free join them
            await self.release(entry)
            log.info("mtproto_channel_handed_back", account=self.name, channel=entry)

    def _flood_over(self) -> None:
        now = time.monotonic()
        over = [kind for kind, until in self._flood_until.items() if until <= now]
        for kind in over:
            del self._flood_until[kind]
        if over and not self._flood_until and self.metrics is not None:
            self.metrics.flood_over(self.name)

    async def _refused(self, tracked: Tracked, reason: str) -> None:
        log.warning("mtproto_channel_refused", account=self.name, channel=tracked.entry,
                    reason=reason)  # fmt: skip
        if reason == CHANNEL_LIMIT:
            self.full = True
        await self.store.refuse(tracked.entry, self.name, reason)
        await self.release(tracked.entry)

    async def _holds(self, tracked: Tracked) -> bool:
        """The account still reads this channel: not shed, not lost, its lease still ours."""
        if self.tracked.get(tracked.entry) is not tracked:
            return False
        return bool(await self.store.owned([tracked.entry], self.name, self.token))

    def _resync(self, tracked: Tracked, album: Post | None) -> None:
        """Read a channel again from its watermark (or, for an edited album item, its album)."""
        self._queue(Work(HISTORY, tracked.entry, album=album))

    def _retry_later(self, work: Work) -> None:
        def retry() -> None:
            self._retries.discard(handle)
            self._queue(work)

        handle = asyncio.get_running_loop().call_later(RETRY_SECONDS, retry)
        self._retries.add(handle)

    async def _note_failure(self, tracked: Tracked, error: str) -> None:
        try:
            await self.writer.failed(tracked.key, error)
        except Exception as exc:  # Redis is away too: the log line above is all we can do
            log.warning("mtproto_health_not_recorded", channel=tracked.key, error=repr(exc))

    async def _become_unusable(self, exc: AccountUnusableError) -> None:
        self.unusable = exc.reason
        self._online.clear()
        freed = await self.store.mark_unusable(self.name, exc.reason, str(exc))
        if self.metrics is not None:
            self.metrics.unusable(self.name, exc.reason)
            self.metrics.connected(self.name, False)
        log.error("mtproto_account_unusable", account=self.name, reason=exc.reason,
                  channels_freed=freed)  # fmt: skip
        self.tracked.clear()
        self._by_id.clear()

    async def _set_online(self, online: bool, **fields: object) -> None:
        if online:
            self._online.set()
            await self.store.update(self.name, connected=True, connected_at=time.time(),
                                    last_error=None, **fields)  # fmt: skip
        else:
            self._online.clear()
            await self.store.update(self.name, connected=False, last_error=fields.get("error"))
        if self.metrics is not None:
            self.metrics.connected(self.name, online)
        log.info("mtproto_account_connected" if online else "mtproto_account_offline",
                 account=self.name)  # fmt: skip
