"""The preview poller against a local preview server, with watermark and health in a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service import constants
from service.config import Settings
from service.sources.base import Listener
from service.sources.preview import (
    PreviewPoller,
    backoff_delay,
    build_http_client,
    parse_retry_after,
)
from service.store.channels import ChannelStore, list_channel_health
from tests.fakes.preview_server import START, FakePreviewServer
from tests.sources import ListSink

CHANNEL = "demo_chan"
INTERVAL = 60.0


class Clock:
    """Wall time under the test's control."""

    def __init__(self) -> None:
        self.now = (START + timedelta(days=1)).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[FakePreviewServer]:
    fake = FakePreviewServer()
    await fake.start()
    fake.add_channel(CHANNEL, "Demo channel")
    yield fake
    await fake.stop()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[ChannelStore]:
    channel_store = ChannelStore.from_url(redis_url)
    yield channel_store
    await channel_store.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_poller(
    server: FakePreviewServer,
    store: ChannelStore,
    http: httpx.AsyncClient,
    sink: ListSink,
    clock: Clock,
) -> Any:
    def make(channels: Any = (CHANNEL,), **options: Any) -> PreviewPoller:
        options = {"interval": INTERVAL, "jitter": 0.0, "clock": clock, **options}
        return PreviewPoller(channels, sink, store, http, base_url=server.base_url, **options)

    return make


def ids(sink: ListSink) -> list[int]:
    return sorted(post.message_id for post in sink.posts)


async def test_first_poll_takes_newest_page_then_watermark_holds(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore, clock: Clock
) -> None:
    server.add_posts(CHANNEL, 25)
    poller = make_poller()

    first = await poller.poll_once(CHANNEL)

    assert first.ok and first.new == 20 and first.pages == 1
    assert ids(sink) == list(range(6, 26))
    assert server.requested(CHANNEL) == [{}]  # no backfill by default
    assert await store.watermark(CHANNEL) == 25
    assert first.delay == INTERVAL
    assert {post.source for post in sink.posts} == {"preview"}

    second = await poller.poll_once(CHANNEL)

    assert second.ok and second.new == 0 and second.edited == 0 and second.unchanged == 20
    assert len(sink.posts) == 20
    health = await store.health(CHANNEL)
    assert health.watermark == 25 and health.failures == 0 and health.last_error is None
    assert health.last_success == clock.now
    newest = START + timedelta(minutes=25)
    assert health.lag_seconds == pytest.approx(clock.now - newest.timestamp())
    assert health.next_poll == clock.now + INTERVAL


async def test_new_posts_are_enqueued_on_the_next_poll(
    server: FakePreviewServer, make_poller: Any, sink: ListSink
) -> None:
    server.add_posts(CHANNEL, 5)
    poller = make_poller()
    await poller.poll_once(CHANNEL)
    server.add_posts(CHANNEL, 3)

    result = await poller.poll_once(CHANNEL)

    assert result.new == 3 and result.watermark == 8
    assert ids(sink) == list(range(1, 9))
    assert server.requested(CHANNEL) == [{}, {}]  # no gap, no paging


async def test_backfill_pages_on_the_first_poll(
    server: FakePreviewServer, make_poller: Any, sink: ListSink
) -> None:
    server.add_posts(CHANNEL, 70)

    result = await make_poller(backfill_pages=2).poll_once(CHANNEL)

    assert result.pages == 3 and result.new == 60
    assert ids(sink) == list(range(11, 71))
    assert server.requested(CHANNEL) == [{}, {"before": "51"}, {"before": "31"}]


async def test_edited_post_is_enqueued_once(
    server: FakePreviewServer, make_poller: Any, sink: ListSink
) -> None:
    server.add_posts(CHANNEL, 10)
    poller = make_poller()
    await poller.poll_once(CHANNEL)

    server.edit_post(CHANNEL, 7, "Post number 7, corrected")
    edited = await poller.poll_once(CHANNEL)
    again = await poller.poll_once(CHANNEL)

    assert edited.edited == 1 and edited.new == 0
    assert again.edited == 0 and again.new == 0
    versions = sink.versions(7)
    assert [post.text for post in versions] == ["Post number 7", "Post number 7, corrected"]
    assert versions[1].edited and versions[1].key == versions[0].key
    assert len(sink.posts) == 11


async def test_gap_is_filled_by_paging_back(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore
) -> None:
    server.add_posts(CHANNEL, 25)
    poller = make_poller()
    await poller.poll_once(CHANNEL)
    server.add_posts(CHANNEL, 30)  # 26..55: the newest page now starts at 36

    result = await poller.poll_once(CHANNEL)

    assert result.ok and result.new == 30 and not result.gap_unfilled
    assert server.requested(CHANNEL)[1:] == [{}, {"before": "36"}]
    assert ids(sink) == list(range(6, 56))  # each post once
    assert await store.watermark(CHANNEL) == 55


async def test_gap_fill_is_bounded(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore
) -> None:
    server.add_posts(CHANNEL, 5)
    poller = make_poller(max_gap_pages=1)
    await poller.poll_once(CHANNEL)
    server.add_posts(CHANNEL, 60)  # 6..65: two pages would be needed, one is allowed

    result = await poller.poll_once(CHANNEL)

    assert result.ok and result.gap_unfilled and result.pages == 2
    assert server.requested(CHANNEL)[1:] == [{}, {"before": "46"}]
    assert ids(sink) == list(range(1, 6)) + list(range(26, 66))
    # Given up, not retried forever: the watermark moves on.
    assert await store.watermark(CHANNEL) == 65


async def test_failed_gap_fill_keeps_the_watermark_and_retries(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore
) -> None:
    server.add_posts(CHANNEL, 5)
    poller = make_poller()
    await poller.poll_once(CHANNEL)
    server.add_posts(CHANNEL, 30)
    original = server._answer

    def fail_older_page(request: Any) -> Any:
        if request.query.get("before"):
            server.fail_next(CHANNEL, 500)
        return original(request)

    server._answer = fail_older_page  # type: ignore[method-assign]
    failed = await poller.poll_once(CHANNEL)
    server._answer = original  # type: ignore[method-assign]

    assert not failed.ok and failed.new == 20  # the newest page still went through
    assert await store.watermark(CHANNEL) == 5
    retried = await poller.poll_once(CHANNEL)
    assert retried.ok and retried.new == 10 and retried.unchanged == 25  # 16-35, 1-5
    assert ids(sink) == list(range(1, 36))
    assert await store.watermark(CHANNEL) == 35


async def test_429_with_retry_after_backs_off_then_recovers(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore, clock: Clock
) -> None:
    server.add_posts(CHANNEL, 3)
    poller = make_poller()
    server.fail_next(CHANNEL, 429, retry_after=300)

    limited = await poller.poll_once(CHANNEL)

    assert not limited.ok and limited.retry_after == 300
    assert limited.delay == 300  # Retry-After beats the first backoff step (the interval)
    health = await store.health(CHANNEL)
    assert health.failures == 1 and health.last_error == "HTTP 429"
    assert health.last_error_at == clock.now and health.next_poll == clock.now + 300
    assert health.last_success is None and sink.posts == []

    server.fail_next(CHANNEL, 503)
    clock.now += 300
    failed_again = await poller.poll_once(CHANNEL)
    assert failed_again.delay == INTERVAL * 2  # exponential: the second failure doubles
    assert (await store.health(CHANNEL)).failures == 2

    clock.now += 120
    recovered = await poller.poll_once(CHANNEL)
    assert recovered.ok and recovered.new == 3 and recovered.delay == INTERVAL
    health = await store.health(CHANNEL)
    assert health.failures == 0 and health.last_success == clock.now
    assert health.last_error == "HTTP 503"  # the last error stays visible


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 60.0),
        (2, None, 120.0),
        (4, None, 480.0),
        (10, None, constants.PREVIEW_BACKOFF_MAX_SECONDS),
        (1, 5.0, 60.0),  # never sooner than the backoff
        (1, 300.0, 300.0),
        (10, 2000.0, 2000.0),  # the server's word beats the cap
        (1, 10**9, constants.PREVIEW_RETRY_AFTER_MAX_SECONDS),
    ],
)
def test_backoff_delay(failures: int, retry_after: float | None, expected: float) -> None:
    assert backoff_delay(failures, 60.0, retry_after) == expected


def test_parse_retry_after() -> None:
    now = START.timestamp()
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(format_datetime(START + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_garbage_channel_is_recorded_and_others_go_on(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, store: ChannelStore
) -> None:
    server.add_posts(CHANNEL, 4)
    server.add_channel("broken_chan").garbage = "<html><body>Under maintenance</body></html>"
    stop = asyncio.Event()
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 6:
            stop.set()
        await asyncio.sleep(0)

    poller = make_poller([CHANNEL, "broken_chan"], sleep=sleep)
    assert isinstance(poller, Listener)
    await asyncio.wait_for(poller.run(stop), 10)

    assert ids(sink) == [1, 2, 3, 4]
    broken = await store.health("broken_chan")
    assert broken.failures >= 2 and broken.last_success is None
    assert broken.last_error is not None and broken.last_error.startswith("not a preview page")
    # Set aside once, with the page to look at, however often it came back.
    assert len(sink.rejected) == 1
    assert "Under maintenance" in sink.rejected[0].raw
    assert sink.rejected[0].source.endswith("/s/broken_chan")
    healthy = await store.health(CHANNEL)
    assert healthy.failures == 0 and healthy.watermark == 4
    assert max(delays) >= INTERVAL * 2  # the broken channel backs off


async def test_unknown_channel_is_an_error_not_a_crash(
    make_poller: Any, store: ChannelStore
) -> None:
    result = await make_poller(["no_such_channel"]).poll_once("no_such_channel")

    assert not result.ok and result.error is not None and "unknown channel" in result.error
    health = await store.health("no_such_channel")
    assert health.failures == 1 and health.last_error == result.error


async def test_network_error_is_recorded(
    store: ChannelStore, http: httpx.AsyncClient, sink: ListSink, clock: Clock
) -> None:
    poller = PreviewPoller(
        [CHANNEL], sink, store, http, base_url="http://127.0.0.1:9", clock=clock, jitter=0.0
    )
    result = await poller.poll_once(CHANNEL)

    assert not result.ok and result.error is not None
    assert result.error.startswith("network error")
    assert (await store.health(CHANNEL)).failures == 1


async def test_oversized_page_is_an_error(
    server: FakePreviewServer, make_poller: Any, sink: ListSink
) -> None:
    server.add_posts(CHANNEL, 20)

    result = await make_poller(max_page_bytes=2000).poll_once(CHANNEL)

    assert not result.ok and result.error == "page larger than 2000 bytes"
    assert sink.posts == []


async def test_concurrency_is_capped(server: FakePreviewServer, make_poller: Any) -> None:
    names = [f"chan_{number}" for number in range(5)]
    for name in names:
        server.add_channel(name)
        server.add_posts(name, 2)
    server.delay = 0.05
    poller = make_poller(names, concurrency=2)

    results = await asyncio.gather(*(poller.poll_once(name) for name in names))

    assert all(result.ok for result in results)
    assert server.max_in_flight == 2


async def test_the_real_page_fixture(
    server: FakePreviewServer, make_poller: Any, sink: ListSink, fixtures_dir: Path
) -> None:
    channel = server.add_channel("mfa_russia")
    channel.raw_page = (fixtures_dir / "mfa_russia_preview.html").read_text(encoding="utf-8")

    result = await make_poller(["mfa_russia"]).poll_once("mfa_russia")

    assert result.ok and result.new == len(sink.posts) > 0
    assert {post.channel for post in sink.posts} == {"mfa_russia"}
    assert result.watermark == max(
        item for post in sink.posts for item in (post.message_id, *post.album_items)
    )


async def test_status_listing_reads_every_channel(
    server: FakePreviewServer, make_poller: Any, redis_client: redis.Redis
) -> None:
    server.add_posts(CHANNEL, 2)
    poller = make_poller([CHANNEL, "no_such_channel"])
    await poller.poll_once(CHANNEL)
    await poller.poll_once("no_such_channel")

    listing = {health.channel: health for health in list_channel_health(redis_client)}

    assert set(listing) == {CHANNEL, "no_such_channel"}
    assert listing[CHANNEL].watermark == 2 and listing[CHANNEL].source == "preview"
    assert listing["no_such_channel"].failures == 1
    assert listing[CHANNEL].to_dict()["channel"] == CHANNEL


async def test_content_hashes_are_capped(
    server: FakePreviewServer, make_poller: Any, redis_client: redis.Redis
) -> None:
    server.add_posts(CHANNEL, 40)
    await make_poller(backfill_pages=1).poll_once(CHANNEL)
    assert redis_client.hlen(f"{constants.SOURCE_STATE_PREFIX}{CHANNEL}:hashes") == 40

    await make_poller().store.record_seen(CHANNEL, {n: "x" for n in range(100, 700)}, None)

    kept = redis_client.hkeys(f"{constants.SOURCE_STATE_PREFIX}{CHANNEL}:hashes")
    assert len(kept) == constants.PREVIEW_HASHES_KEPT
    assert min(int(key) for key in kept) == 700 - constants.PREVIEW_HASHES_KEPT


async def test_from_settings(store: ChannelStore, sink: ListSink) -> None:
    settings = Settings(
        channels="@one, two",  # type: ignore[arg-type]
        preview_url="http://preview.internal/",
        preview_interval=30,
        preview_backfill_pages=2,
        preview_concurrency=3,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with build_http_client(settings.preview_concurrency) as client:
        poller = PreviewPoller.from_settings(settings, sink, store, client)

    assert poller.intervals == {"one": 30.0, "two": 30.0}
    assert poller.page_url("one", 5) == "http://preview.internal/s/one?before=5"
    assert poller.backfill_pages == 2


async def test_channels_added_and_removed_at_run_time(
    server: FakePreviewServer, make_poller: Any, sink: ListSink
) -> None:
    """A channel added from the bot or the API is polled without a restart; a removed one stops."""
    server.add_posts(CHANNEL, 2)
    server.add_channel("late_chan")
    server.add_posts("late_chan", 3)
    wanted: set[str] = set()
    stop = asyncio.Event()

    async def source() -> set[str]:
        return set(wanted)

    poller = make_poller([CHANNEL], channel_source=source, refresh_every=0.05,
                         sleep=lambda _d: asyncio.sleep(0.01))  # fmt: skip
    task = asyncio.create_task(poller.run(stop))
    await _until(lambda: len(sink.posts) == 2)
    assert {p.channel for p in sink.posts} == {CHANNEL}
    wanted.add("late_chan")
    await _until(lambda: len([p for p in sink.posts if p.channel == "late_chan"]) == 3)
    assert "late_chan" in poller.channels
    assert sorted(p.message_id for p in sink.posts if p.channel == "late_chan") == [1, 2, 3]
    wanted.clear()
    await _until(lambda: "late_chan" not in poller.channels)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_polls_are_measured(
    server: FakePreviewServer, make_poller: Any, clock: Clock
) -> None:
    from service.metrics import Metrics

    metrics = Metrics()
    server.add_posts(CHANNEL, 3)
    server.add_channel("broken_chan").garbage = "<html>nope</html>"
    poller = make_poller([CHANNEL, "broken_chan"], metrics=metrics)
    await poller.poll_once(CHANNEL)
    await poller.poll_once("broken_chan")
    registry = metrics.registry
    assert registry.get_sample_value("tgwatch_poll_duration_seconds_count",
                                     {"channel": CHANNEL}) == 1  # fmt: skip
    lag = registry.get_sample_value("tgwatch_source_lag_seconds", {"channel": CHANNEL})
    newest = max(post.date for post in server.channel(CHANNEL).posts.values())
    assert lag == pytest.approx(clock.now - newest.timestamp())
    assert registry.get_sample_value("tgwatch_source_errors_total",
                                     {"source": "preview", "reason": "parse"}) == 1  # fmt: skip


async def _until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds (plain state of the poller and the sink)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - there is no event to wait on
            await asyncio.sleep(0.01)
