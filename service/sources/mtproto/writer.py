"""Where the MTProto source's posts go: the sink, the per-channel watermark and health shared with
the preview poller, the channel's pace, and deleted versions in the post store.

A post version already emitted for a channel (same text hash, by this source or the preview) is
not handed over again; the sink's claim catches the rest. Deletions never travel the queue, so
they are never alerted: the latest stored version of the post is stored again marked deleted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from service.core.formats.result import Rejected
from service.core.post import Post
from service.metrics.mtproto import MtprotoMetrics
from service.sources.base import PostSink
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore
from service.store.posts import PostStore

log = structlog.get_logger(__name__)


@runtime_checkable
class FlushingSink(PostSink, Protocol):
    """A sink that buffers (the queue's Enqueuer) and can put what it holds on the queue now."""

    async def flush(self) -> None: ...


@runtime_checkable
class BatchSink(PostSink, Protocol):
    """A sink that takes many posts in one call (the Enqueuer: one claim round trip)."""

    async def put_many(self, posts: Sequence[Post]) -> int: ...


@dataclass(frozen=True)
class Emission:
    """One channel's share of an ``emit_many``."""

    key: str
    posts: Sequence[Post]
    watermark: int | None
    arrived: Sequence[float] = ()


SOURCE = "mtproto"
# Gaps between posts measured before a channel's pace is exported (and can raise the silence
# alert): a channel seen posting twice has no pace to speak of.
MIN_PACE_SAMPLES = 5
# The content hash of a deleted version: a version of its own, whatever the text was.
DELETED_HASH = "deleted"


class ChannelWriter:
    """Shared by the accounts of one process; every method is safe to call concurrently."""

    def __init__(
        self,
        sink: PostSink,
        channels: ChannelStore,
        accounts: AccountStore,
        posts: PostStore | None = None,
        *,
        metrics: MtprotoMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.channels = channels
        self.accounts = accounts
        self.posts = posts
        self.metrics = metrics
        self.clock = clock
        self._inflight: set[asyncio.Task[int]] = set()

    async def emit(
        self,
        key: str,
        posts: Sequence[Post],
        *,
        watermark: int | None,
        arrived: Sequence[float] = (),
    ) -> int:
        """Hand over the versions not emitted before; record them and move the watermark (never
        back). ``arrived`` (monotonic, one per live post) times updates to their enqueueing.
        Returns how many versions the sink took as new."""
        return await self.emit_many([Emission(key, posts, watermark, arrived)])

    async def emit_many(self, emissions: Sequence[Emission]) -> int:
        """``emit`` for several channels at once: one claim round trip and one queue job.

        A hand-over, once begun, runs to its end even if the caller is cancelled (a stopping
        account): cancelled between claiming posts and queueing them, or between queueing and
        recording, it would lose them or queue them twice. ``drain`` waits for those still going.
        """
        task = asyncio.ensure_future(self._emit_many(emissions))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for hand-overs still going (their callers were cancelled)."""
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _emit_many(self, emissions: Sequence[Emission]) -> int:
        fresh: list[Post] = []
        emitted: list[dict[int, str]] = []
        for emission in emissions:
            ids = [post.message_id for post in emission.posts]
            known = await self.channels.hashes(emission.key, ids)
            new = {
                p.message_id: p for p in emission.posts if known.get(p.message_id) != p.content_hash
            }
            fresh.extend(new.values())
            emitted.append({message_id: post.content_hash for message_id, post in new.items()})
        taken = await self._hand_over(fresh)
        if fresh and isinstance(self.sink, FlushingSink):
            # On the queue before the watermark moves past them: a process killed in between
            # leaves them unrecorded, and the next reader of the channel reads them again.
            await self.sink.flush()
        if fresh and self.metrics is not None:
            now = time.monotonic()
            for moment in (m for emission in emissions for m in emission.arrived):
                self.metrics.enqueued_after(now - moment)
        for emission, hashes in zip(emissions, emitted, strict=True):
            await self.channels.record_seen(emission.key, hashes, emission.watermark)
            dates = [p.date.timestamp() for p in emission.posts
                     if p.message_id in hashes and not p.is_edit]  # fmt: skip
            if dates:
                await self._note_activity(emission.key, dates)
        return taken

    async def _hand_over(self, posts: list[Post]) -> int:
        if not posts:
            return 0
        if isinstance(self.sink, BatchSink):
            return await self.sink.put_many(posts)
        taken = 0
        for post in posts:
            taken += bool(await self.sink.put(post))
        return taken

    async def move_watermark(self, key: str, watermark: int) -> None:
        await self.channels.record_seen(key, {}, watermark)

    async def healthy(self, key: str) -> None:
        """The channel was read (caught up or a live post arrived): clear its failures."""
        last, _interval, _samples = await self.accounts.activity(key)
        await self.channels.record_success(key, at=self.clock(), newest_date=last, source=SOURCE)
        if self.metrics is not None and last is not None:
            self.metrics.lag(key, last)

    async def failed(self, key: str, error: str) -> None:
        await self.channels.record_error(key, at=self.clock(), error=error, source=SOURCE)

    async def reject(self, rejected: Rejected) -> None:
        await self.sink.reject(rejected)

    async def show_activity(self, key: str) -> None:
        """Export a channel's last post and pace as soon as this process reads it (the silence
        alert then works right after a restart or a takeover)."""
        if self.metrics is None:
            return
        last, interval, samples = await self.accounts.activity(key)
        self.metrics.source(key, SOURCE)
        if last is not None:
            self.metrics.post(key, last, interval if samples >= MIN_PACE_SAMPLES else None)

    async def record_deleted(self, key: str, message_ids: Sequence[int]) -> int:
        """Store a deleted version of each known post; returns how many were recorded."""
        if self.posts is None or not message_ids:
            return 0
        recorded = await asyncio.to_thread(self._store_deleted, key, list(message_ids))
        if recorded and self.metrics is not None:
            self.metrics.deleted_recorded(recorded)
        log.info("mtproto_deleted", channel=key, messages=len(message_ids), recorded=recorded)
        return recorded

    def _store_deleted(self, key: str, message_ids: list[int]) -> int:
        assert self.posts is not None
        recorded = 0
        for message_id in message_ids:
            latest = self.posts.latest(f"{key}/{message_id}")
            if latest is None or latest.post.deleted:
                continue  # never seen (or before the store's horizon), or already marked
            deleted = latest.post.with_changes(deleted=True, content_hash=DELETED_HASH,
                                               source=SOURCE)  # fmt: skip
            if self.posts.store(deleted, latest.enrichment) > 0:
                recorded += 1
        return recorded

    async def _note_activity(self, key: str, dates: Sequence[float]) -> None:
        last, interval, samples = await self.accounts.record_posts(key, dates)
        await self.channels.record_success(key, at=self.clock(), newest_date=last, source=SOURCE)
        if self.metrics is not None and last is not None:
            # An estimate from fewer than a few gaps is no "usual pace" yet.
            self.metrics.post(key, last, interval if samples >= MIN_PACE_SAMPLES else None)
            self.metrics.lag(key, last)
