"""The posts queue: dedupe post versions, batch them into RQ jobs, set bad input aside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
import structlog
from redis.client import Pipeline
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from service import constants
from service.core.formats.result import Rejected
from service.core.post import Post, bare_channel_id
from service.redis import Outage, text
from service.store.rejected import record_rejected

if TYPE_CHECKING:
    from service.metrics import Metrics

log = structlog.get_logger(__name__)

PROCESS_POSTS = "workers.jobs.process_posts"
SEEN_PREFIX = constants.KEY_PREFIX + "seen:"
# Channel id → username, learned from sources that know both (Bot API, preview) so that posts from
# sources that only know the id (Desktop exports, private channels) land on the same channel.
CHANNEL_NAMES_KEY = constants.KEY_PREFIX + "channel-names"
# A claim on a post version lives this long until its batch is safely on the queue; if the process
# dies first, the claim expires and the next sighting of the post enqueues it again.
CLAIM_TTL_SECONDS = 120
# Once its batch is on the queue, the claim lives this long — long enough for a backlog of hours
# — and only the worker that stored the version makes it the two-week "seen" mark
# (``queue_confirm_seen``). So a batch lost before it was stored never blocks a re-ingest for
# weeks; a version enqueued twice meanwhile is found stored by the worker and skipped.
CLAIM_QUEUED_TTL_SECONDS = 6 * 3600
# Each post of a job carries when it was handed to the queue (Unix time), under this key next to
# its ``Post.to_dict`` fields: workers observe ``enqueued -> decided`` from it.
QUEUED_AT = "queued_at"


def _bare(post: Post) -> str:
    return str(bare_channel_id(post.channel_id or 0))


def queue_confirm_seen(pipe: Pipeline, version_keys: Iterable[str]) -> None:
    """Post versions are stored: their claims become the two-week "seen" marks, in the caller's
    transaction (the one that stores them)."""
    for key in version_keys:
        pipe.set(SEEN_PREFIX + key, "stored", ex=constants.SEEN_TTL_SECONDS)


def confirm_seen(connection: redis.Redis, version_keys: Sequence[str]) -> None:
    """``queue_confirm_seen`` in a round trip of its own."""
    if version_keys:
        pipe = connection.pipeline(transaction=False)
        queue_confirm_seen(pipe, version_keys)
        pipe.execute()


def posts_queue(connection: redis.Redis, name: str = constants.POSTS_QUEUE) -> Queue:
    """The RQ queue posts travel on, as JSON (never pickled objects)."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


@dataclass
class EnqueueStats:
    seen: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0
    jobs: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


class Enqueuer:
    """Turns posts from any source into batched RQ jobs, each post version once.

    ``put`` claims a post version (SET NX on its channel/id/text-hash key) so a second sighting,
    by the same or another source or process, is dropped; the post then waits in a buffer that is
    flushed as one job. Batching adapts to the rate: a post that comes after ``batch_wait``
    seconds without a batch goes at once, alone; posts that come faster wait until
    ``batch_wait`` after the previous batch, and a flood fills batches of ``batch_size``, each
    sent as soon as it is full. So a post waits at most ``batch_wait``, and the jobs of a steady
    stream are at most one per ``batch_wait`` plus one per ``batch_size`` posts. Redis calls run
    in a thread so a slow Redis never blocks a listener's event loop.
    """

    def __init__(
        self,
        connection: redis.Redis,
        *,
        queue: Queue | None = None,
        batch_size: int = constants.BATCH_MAX_POSTS,
        batch_wait: float = constants.BATCH_MAX_WAIT_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self.connection = connection
        self.queue = queue or posts_queue(connection)
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.metrics = metrics
        self.stats = EnqueueStats()
        self._buffer: list[tuple[Post, float]] = []  # with when each was handed to us
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self.outage = Outage("enqueuer")
        self._last_batch = float("-inf")  # time.monotonic() of the latest batch sent
        self._sending: asyncio.Future[None] | None = None  # a batch on its way to Redis

    # --- the PostSink protocol -----------------------------------------------------------------
    async def put(self, post: Post) -> bool:
        return (await self.put_many([post])) == 1

    async def put_many(self, posts: Sequence[Post]) -> int:
        """Claim and buffer new post versions; returns how many were new."""
        if not posts:
            return 0
        posts = await asyncio.to_thread(self._resolve_channels, posts)
        claimed = await asyncio.to_thread(self._claim, posts)
        fresh = [post for post, ok in zip(posts, claimed, strict=True) if ok]
        self._count(posts, fresh)
        if not fresh:
            return 0
        queued_at = time.time()
        async with self._lock:
            self._buffer.extend((post, queued_at) for post in fresh)
            full = len(self._buffer) >= self.batch_size
            due = self._last_batch + self.batch_wait - time.monotonic()
        if full or due <= 0:  # a full batch, or the first post after a quiet spell: now
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._flush_later(due))
        return len(fresh)

    async def reject(self, rejected: Rejected) -> None:
        self.stats.rejected += 1
        if self.metrics is not None:
            self.metrics.reject("input", "malformed")
        await asyncio.to_thread(record_rejected, self.connection, rejected)
        log.warning("input_rejected", source=rejected.source, index=rejected.index,
                    reason=rejected.reason)  # fmt: skip

    async def flush(self) -> None:
        """Put every buffered post on the queue now (also called on shutdown)."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                self._last_batch = time.monotonic()
                # Shielded: a flush cancelled (the timer's, at close) while its batch is on the
                # way lets it arrive and leave the buffer, never to be sent a second time.
                self._sending = asyncio.ensure_future(self._send(batch))
                await asyncio.shield(self._sending)

    async def _send(self, batch: list[tuple[Post, float]]) -> None:
        await asyncio.to_thread(self._enqueue_batch, batch)
        del self._buffer[: len(batch)]

    async def close(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        await self.flush()

    # --- internals -----------------------------------------------------------------------------
    async def _flush_later(self, delay: float) -> None:
        """Flush the batch when its wait is over; while Redis is away, keep it and try again
        (capped backoff), so posts a source handed over are not dropped by an outage."""
        await asyncio.sleep(delay)
        while True:
            try:
                await self.flush()
            except redis.RedisError as exc:
                await asyncio.sleep(self.outage.failed(exc))
                continue
            self.outage.recovered()
            return

    def _resolve_channels(self, posts: Sequence[Post]) -> list[Post]:
        """Learn id → username from posts that carry both; name id-only posts by it."""
        learned = {
            str(bare_channel_id(post.channel_id)): post.channel
            for post in posts
            if post.channel_id is not None and not post.channel.startswith("c/")
        }
        unnamed = sorted({_bare(p) for p in posts if p.channel.startswith("c/") and p.channel_id})
        names: dict[str, str] = {}
        if unnamed:
            found = self.connection.hmget(CHANNEL_NAMES_KEY, unnamed)
            names = {key: text(value) for key, value in zip(unnamed, found, strict=True) if value}
        if learned:
            pipe = self.connection.pipeline(transaction=False)
            for channel_id, name in learned.items():
                pipe.hset(CHANNEL_NAMES_KEY, channel_id, name)
            pipe.execute()
        names.update(learned)
        return [
            post.with_changes(channel=names[_bare(post)])
            if post.channel.startswith("c/") and _bare(post) in names
            else post
            for post in posts
        ]

    def _claim(self, posts: Sequence[Post]) -> list[bool]:
        pipe = self.connection.pipeline(transaction=False)
        for post in posts:
            pipe.set(SEEN_PREFIX + post.version_key, post.source, nx=True, ex=CLAIM_TTL_SECONDS)
        return [bool(ok) for ok in pipe.execute()]

    def _enqueue_batch(self, batch: list[tuple[Post, float]]) -> None:
        payload = [{**post.to_dict(), QUEUED_AT: queued_at} for post, queued_at in batch]
        with self.connection.pipeline() as pipe:
            self.queue.enqueue_call(
                PROCESS_POSTS,
                args=(payload,),
                timeout=constants.JOB_TIMEOUT_SECONDS,
                result_ttl=constants.JOB_RESULT_TTL_SECONDS,
                failure_ttl=constants.JOB_FAILURE_TTL_SECONDS,
                retry=Retry(
                    max=constants.JOB_RETRY_MAX, interval=list(constants.JOB_RETRY_INTERVALS)
                ),
                description=f"{len(batch)} posts",
                pipeline=pipe,
            )
            for post, _queued_at in batch:
                pipe.expire(SEEN_PREFIX + post.version_key, CLAIM_QUEUED_TTL_SECONDS)
            pipe.execute()
        self.stats.jobs += 1
        log.debug("batch_enqueued", posts=len(batch), queue=self.queue.name)

    def _count(self, posts: Iterable[Post], fresh: list[Post]) -> None:
        total = 0
        for post in posts:
            total += 1
            self.stats.by_source[post.source] = self.stats.by_source.get(post.source, 0) + 1
        self.stats.seen += total
        self.stats.enqueued += len(fresh)
        self.stats.duplicates += total - len(fresh)
        if self.metrics is not None:
            for post in posts:
                self.metrics.post_seen(post.source, post.channel_key)
            for post in fresh:
                self.metrics.post_enqueued(post.source, post.channel_key)
            fresh_keys = {id(post) for post in fresh}
            for post in posts:
                if id(post) not in fresh_keys:
                    self.metrics.post_duplicate(post.source)
