"""Where the source's posts go: on the queue before the watermark moves, each version once,
deleted versions stored and never queued, the channel's pace exported."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from prometheus_client import CollectorRegistry

from service.core.post import Post
from service.metrics import Metrics
from service.queue import Enqueuer, posts_queue
from service.sources.mtproto.writer import MIN_PACE_SAMPLES, ChannelWriter
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore
from service.store.posts import PostStore
from tests.sources import ListSink

START = datetime(2025, 3, 1, tzinfo=UTC)


class FlushProbe(ListSink):
    """A buffering sink that notes the channel's watermark each time it is flushed."""

    def __init__(self, channels: ChannelStore) -> None:
        super().__init__()
        self.channels = channels
        self.watermarks_at_flush: list[int | None] = []

    async def flush(self) -> None:
        self.watermarks_at_flush.append(await self.channels.watermark("chan"))


def post(message_id: int, text: str = "text", **fields: object) -> Post:
    return Post("chan", message_id, START + timedelta(hours=message_id), text, source="mtproto",
                **fields)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[tuple[ChannelStore, AccountStore]]:
    channels, accounts = ChannelStore.from_url(redis_url), AccountStore.from_url(redis_url)
    yield channels, accounts
    await channels.aclose()
    await accounts.aclose()


async def test_posts_are_on_the_queue_before_the_watermark_passes_them(
    stores: tuple[ChannelStore, AccountStore],
) -> None:
    channels, accounts = stores
    sink = FlushProbe(channels)
    writer = ChannelWriter(sink, channels, accounts)
    await writer.emit("chan", [post(1), post(2)], watermark=2)
    await writer.emit("chan", [post(3)], watermark=3)
    assert sink.watermarks_at_flush == [None, 2]
    assert await channels.watermark("chan") == 3
    await writer.emit("chan", [post(3)], watermark=3)  # the same version again: not handed over
    assert [p.message_id for p in sink.posts] == [1, 2, 3]
    assert sink.watermarks_at_flush == [None, 2]


async def test_a_deletion_stores_a_deleted_version_of_known_posts_only(
    stores: tuple[ChannelStore, AccountStore], redis_client: redis.Redis
) -> None:
    channels, accounts = stores
    posts = PostStore(redis_client)
    metrics = Metrics(CollectorRegistry())
    sink = ListSink()
    writer = ChannelWriter(sink, channels, accounts, posts, metrics=metrics.mtproto)
    posts.store(post(7, "the words"))
    assert await writer.record_deleted("chan", [7, 8]) == 1
    assert await writer.record_deleted("chan", [7]) == 0  # already marked
    versions = posts.versions("chan/7")
    assert [(v.post.deleted, v.post.text) for v in versions] == [
        (False, "the words"), (True, "the words")
    ]  # fmt: skip
    assert sink.posts == []  # never queued, so never alerted
    assert metrics.registry.get_sample_value("tgwatch_mtproto_deleted_total") == 1.0


async def test_new_posts_set_the_channel_pace_once_it_is_known(
    stores: tuple[ChannelStore, AccountStore],
) -> None:
    channels, accounts = stores
    metrics = Metrics(CollectorRegistry())
    writer = ChannelWriter(ListSink(), channels, accounts, metrics=metrics.mtproto)

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"channel": "chan"})

    for message_id in range(1, MIN_PACE_SAMPLES + 1):
        await writer.emit("chan", [post(message_id)], watermark=message_id)
    assert sample("tgwatch_channel_last_post_timestamp_seconds") == post(5).date.timestamp()
    assert sample("tgwatch_channel_usual_interval_seconds") is None  # 4 gaps: no pace yet
    await writer.emit("chan", [post(6)], watermark=6)
    assert sample("tgwatch_channel_usual_interval_seconds") == pytest.approx(3600.0)
    edited = post(6, "changed", edited=True, edit_date=START + timedelta(days=2))
    await writer.emit("chan", [edited], watermark=None)  # an edit is no new post
    assert sample("tgwatch_channel_last_post_timestamp_seconds") == post(6).date.timestamp()
    health = await channels.health("chan")
    assert (health.source, health.failures) == ("mtproto", 0)
    lag = metrics.registry.get_sample_value("tgwatch_source_lag_seconds", {"channel": "chan"})
    assert lag is not None and lag >= datetime.now(UTC).timestamp() - post(6).date.timestamp() - 5


async def test_a_cancelled_hand_over_still_queues_each_post_once(
    stores: tuple[ChannelStore, AccountStore], redis_client: redis.Redis
) -> None:
    """A stopping account cancels its work mid hand-over: the posts it claimed must still reach
    the queue, once, and the watermark follow them."""
    channels, accounts = stores
    sink = Enqueuer(redis_client, batch_wait=60)
    writer = ChannelWriter(sink, channels, accounts)
    for cut_after in range(1, 7):  # cancel at each of the first awaits of a hand-over
        posts = [post(100 * cut_after + n) for n in range(1, 4)]
        task = asyncio.create_task(writer.emit("chan", posts, watermark=posts[-1].message_id))
        for _ in range(cut_after):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.drain()
        assert await channels.watermark("chan") == posts[-1].message_id
    await sink.close()
    queued = [p["message_id"] for job in posts_queue(redis_client).jobs for p in job.args[0]]
    assert sorted(queued) == sorted(100 * cut + n for cut in range(1, 7) for n in range(1, 4))
