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

from service.core.post import Post
from service.metrics import MtprotoMetrics
from service.sources.mtproto.albums import assemble_album, group_albums
from service.sources.mtproto.client import (
    CHANNEL_LIMIT,
    AccountUnusableError,
    ChannelEvent,
    ChannelMessage,
    ChannelRef,
    ChannelUnreadableError,
    Deletion,
    DisconnectedError,
    FloodWaitError,
    MtprotoClient,
    is_invite,
)
from service.sources.mtproto.settings import MtprotoSettings
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountStore

log = structlog.get_logger(__name__)

JOIN, HISTORY = "join", "history"
# Which work a FloodWaitError on an operation pauses.
FLOOD_KIND = {"resolve": JOIN, "join": JOIN, "history": HISTORY}
# Album items arrive as separate updates within milliseconds; an album is emitted once no new
# item has come for this long (as the bot source does).
ALBUM_WAIT_SECONDS = 1.0
# Telegram albums hold at most 10 items: an edited item's album lies within 10 ids either side.
ALBUM_MAX_ITEMS = 10
# Reconnect after a lost connection from 1 s, doubling to a minute: an outage must not turn into
# a tight loop, and recovery should be noticed within a minute.
RECONNECT_MIN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 60.0
# A request that failed for another reason is retried after this long (the resync retries too).
RETRY_SECONDS = 5.0
# The account's "last update" in Redis is written at most this often (every update is too much).
UPDATE_STAMP_SECONDS = 5.0
# Stopping cancels the account's tasks, again every 0.1 s for one that swallowed the cancel,
# giving up waiting after 10 s (a stop must not hang on a stuck request).
CANCEL_ROUNDS = 100
CANCEL_WAIT_SECONDS = 0.1


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again any that swallowed the first
    cancel (a library catching CancelledError mid-request, or 3.11's wait_for race)."""
    for _ in range(CANCEL_ROUNDS):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_WAIT_SECONDS)
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Tracked:
    """A channel leased to this account."""

    entry: str
    ref: ChannelRef | None = None
    synced: bool = False  # caught up since the last (re)connect: live posts move the watermark
    live_max: int = 0  # newest id seen live while not synced

    @property
    def key(self) -> str:
        return self.ref.key if self.ref is not None else self.entry


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
        self._by_id: dict[int, Tracked] = {}
        self._work: deque[Work] = deque()
        self._queued: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        self._flood_until: dict[str, float] = {}
        self._albums: dict[tuple[str, str], list[Post]] = {}
        self._album_seen: dict[tuple[str, str], float] = {}
        self._album_tasks: set[asyncio.Task[None]] = set()
        self._stamped = 0.0

    # --- what the pool asks ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._online.is_set()

    def accepts_new(self) -> bool:
        """Connected, usable, and not serving a flood wait on joins."""
        flooded = self._flood_until.get(JOIN, 0.0) > time.monotonic()
        return self.connected and self.unusable is None and not flooded and not self.full

    def pending(self) -> list[str]:
        """Channels assigned but not joined yet."""
        return [entry for entry, tracked in self.tracked.items() if tracked.ref is None]

    def assign(self, entry: str) -> None:
        if entry in self.tracked:
            return
        self.tracked[entry] = Tracked(entry)
        self._queue(Work(JOIN, entry))
        log.info("mtproto_channel_assigned", account=self.name, channel=entry)

    def drop(self, entry: str) -> None:
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
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([*tasks, stopper])
            await self._flush_albums()
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
                    await self._on_event(event, time.monotonic())
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
            except Exception as exc:  # Redis or the sink: the channel is retried at resync
                log.error("mtproto_work_failed", account=self.name, channel=work.entry,
                          kind=work.kind, error=repr(exc))  # fmt: skip
                await self._note_failure(tracked, repr(exc))

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
        ref, key = tracked.ref, tracked.key
        watermark = await self.writer.channels.watermark(key)
        pages = self.settings.backfill_pages if watermark is None else self.settings.catchup_pages
        if watermark is None and pages == 0:
            # First sight of the channel and no backfill asked: start from its newest post.
            latest = await self.client.history(ref, min_id=0, before_id=None, limit=1)
            start = max([m.message_id for m in latest] + [tracked.live_max])
            await self.writer.move_watermark(key, start)
            tracked.synced = True
            await self.writer.healthy(key)
            return
        collected: list[ChannelMessage] = []
        before: int | None = None
        complete = False
        for _ in range(pages):
            page = await self.client.history(
                ref, min_id=watermark or 0, before_id=before, limit=self.settings.page_size
            )
            collected.extend(page)
            if len(page) < self.settings.page_size:
                complete = True
                break
            before = min(message.message_id for message in page)
        if not complete and watermark is not None:
            log.warning("mtproto_gap_unfilled", account=self.name, channel=key, after=watermark,
                        before=before, pages=pages)  # fmt: skip
        for message in collected:
            if message.rejected is not None:
                await self.writer.reject(message.rejected)
        posts = group_albums([message.post for message in collected if message.post is not None])
        newest = max([m.message_id for m in collected] + [watermark or 0, tracked.live_max])
        await self.writer.emit(key, posts, watermark=newest or None)
        tracked.synced = True
        await self.writer.healthy(key)
        log.info("mtproto_caught_up", account=self.name, channel=key, posts=len(posts),
                 watermark=newest)  # fmt: skip

    async def _album_edit(self, tracked: Tracked, item: Post) -> None:
        """An album item was edited: read its album around it and emit the album again."""
        assert tracked.ref is not None
        page = await self.client.history(
            tracked.ref,
            min_id=max(0, item.message_id - ALBUM_MAX_ITEMS),
            before_id=item.message_id + ALBUM_MAX_ITEMS + 1,
            limit=2 * ALBUM_MAX_ITEMS + 1,
        )
        items = {m.message_id: m.post for m in page if m.post and m.post.album_id == item.album_id}
        items[item.message_id] = item
        album = assemble_album(list(items.values()), edited=True)
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
        if kind == JOIN and exc.seconds > self.settings.flood_handoff_seconds:
            for entry in self.pending():  # let accounts that are free join them
                await self.store.release_channel(entry, self.name, self.token)
                self.drop(entry)
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
        await self.store.release_channel(tracked.entry, self.name, self.token)
        self.drop(tracked.entry)

    async def _note_failure(self, tracked: Tracked, error: str) -> None:
        try:
            await self.writer.failed(tracked.key, error)
        except Exception as exc:  # Redis is away too: the log line above is all we can do
            log.warning("mtproto_health_not_recorded", channel=tracked.key, error=repr(exc))
        await asyncio.sleep(RETRY_SECONDS)

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

    # --- updates ----------------------------------------------------------------------------------
    async def _on_event(self, event: ChannelEvent, arrived: float) -> None:
        now = time.time()
        if self.metrics is not None:
            self.metrics.updated(self.name, now)
        if now - self._stamped >= UPDATE_STAMP_SECONDS:
            self._stamped = now
            await self.store.update(self.name, last_update=now)
        tracked = self._by_id.get(event.channel_id)
        if tracked is None:  # a channel the account is in but another account reads
            return
        if isinstance(event, Deletion):
            try:
                await self.writer.record_deleted(tracked.key, event.message_ids)
            except Exception as exc:  # the post store is away: the deletion is only logged
                log.error("mtproto_deletion_not_recorded", channel=tracked.key, error=repr(exc))
            return
        try:
            await self._on_message(tracked, event, arrived)
        except Exception as exc:  # Redis or the sink failed: read the channel again from its mark
            log.error("mtproto_update_failed", account=self.name, channel=tracked.key,
                      message_id=event.message_id, error=repr(exc))  # fmt: skip
            tracked.synced = False
            self._queue(Work(HISTORY, tracked.entry))

    async def _on_message(self, tracked: Tracked, event: ChannelMessage, arrived: float) -> None:
        if not tracked.synced:
            tracked.live_max = max(tracked.live_max, event.message_id)
        watermark = event.message_id if tracked.synced else None
        if event.rejected is not None:
            await self.writer.reject(event.rejected)
        post = event.post
        if post is None:
            if watermark is not None:
                await self.writer.move_watermark(tracked.key, watermark)
        elif post.album_id is not None and event.edited:
            self._queue(Work(HISTORY, tracked.entry, album=post))
        elif post.album_id is not None:
            self._buffer_album(tracked, post)
        else:
            await self.writer.emit(tracked.key, [post], watermark=watermark, arrived=arrived)

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
        await self._emit_album(key)

    async def _emit_album(self, key: tuple[str, str]) -> None:
        items = self._albums.pop(key, None)
        self._album_seen.pop(key, None)
        tracked = self.tracked.get(key[0])
        if not items or tracked is None:
            return
        album = assemble_album(items)
        newest = max(album.album_items)
        await self.writer.emit(tracked.key, [album], watermark=newest if tracked.synced else None)

    async def _flush_albums(self) -> None:
        """Emit buffered albums now (stopping must not lose them)."""
        for task in list(self._album_tasks):
            task.cancel()
        await asyncio.gather(*self._album_tasks, return_exceptions=True)
        for key in list(self._albums):
            try:
                await self._emit_album(key)
            except Exception as exc:  # Redis away at shutdown: a catch-up will bring it back
                log.error("mtproto_album_lost", channel=key[0], error=repr(exc))
