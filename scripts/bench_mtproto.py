"""Benchmark the MTProto source: update → enqueued latency, and catch-up rate, from a fake stream.

Usage: ``python scripts/bench_mtproto.py [--updates 10000] [--rate 500] [--redis-url URL]``

A stand-in for Telegram behind the source's own client interface hands the real account pool
(leases in Redis, the shared watermark, the writer, the real Enqueuer and RQ queue) posts made of
the bundled sample's texts under new ids (~1 KB each):

- **live, paced**: ``--updates`` updates pushed at ``--rate`` a second to one account reading 20
  channels; for each post, the time from the update's arrival (Telegram pushing it to the client)
  to its RQ job being on the posts queue (the source flushes before it moves a channel's
  watermark, so this is the whole way). p50, p90, p99 and max.
- **live, burst**: the same number arriving at once: how fast the source drains a backlog (the
  latency then includes the wait behind the updates before it).
- **catch-up**: one channel ``--updates`` posts behind its watermark, read at 100 a page
  (``catchup_pages`` large enough for all of it): posts per second from lease to queue.
- **mapping**: ``--updates`` channel updates as bytes, read back by Telethon and mapped to posts
  (what the stand-in above skips): microseconds per update.

Without ``--redis-url`` an embedded Redis in a temporary directory is used, so the benchmark
never touches a database of yours.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import redis
from pydantic import SecretStr

from service.config import MtprotoSettings
from service.core.formats.detect import parse_file
from service.core.post import CHANNEL_ID_BASE, Post
from service.logging import configure_logging
from service.queue import Enqueuer, posts_queue
from service.redis import start_embedded
from service.sources.mtproto.client import (
    AccountInfo,
    ChannelEvent,
    ChannelMessage,
    ChannelRef,
)
from service.sources.mtproto.pool import AccountPool
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore

SAMPLE = Path(__file__).resolve().parent.parent / "service" / "data" / "sample"


class Stream:
    """Telegram as the pool sees it: channels with a history, and a stream it can push to."""

    def __init__(self, channels: dict[str, int]) -> None:
        self.ids = channels  # username -> bare id
        self.messages: dict[int, list[ChannelMessage]] = {i: [] for i in channels.values()}
        self.queue: asyncio.Queue[ChannelMessage] = asyncio.Queue()
        self.arrived: dict[str, float] = {}  # version key -> perf_counter when Telegram sent it

    def client(self, _account: str) -> Stream:
        return self

    async def connect(self) -> AccountInfo:
        return AccountInfo(1, "@bench")

    async def disconnect(self) -> None:
        return None

    async def resolve(self, username: str) -> ChannelRef:
        return ChannelRef(self.ids[username], 1, username, username, joined=True)

    async def join(self, channel: ChannelRef) -> ChannelRef:
        return channel

    async def join_invite(self, invite_hash: str) -> ChannelRef:
        raise NotImplementedError("no invites in the benchmark")

    async def history(
        self, channel: ChannelRef, *, min_id: int, before_id: int | None, limit: int
    ) -> list[ChannelMessage]:
        upper = before_id or 10**12
        found = [m for m in self.messages[channel.channel_id] if min_id < m.message_id < upper]
        return sorted(found, key=lambda m: -m.message_id)[:limit]

    async def updates(self) -> AsyncIterator[ChannelEvent]:
        while True:
            yield await self.queue.get()

    def send(self, message: ChannelMessage) -> None:
        """Telegram pushes an update: it waits in the client's queue until the source reads it."""
        assert message.post is not None
        self.arrived[message.post.version_key] = time.perf_counter()
        self.queue.put_nowait(message)

    async def log_out(self) -> None:
        return None

    def session(self) -> SecretStr:
        return SecretStr("")


class TimedEnqueuer(Enqueuer):
    """The real Enqueuer, noting when each post's job is on the queue."""

    def __init__(self, connection: redis.Redis) -> None:
        super().__init__(connection)
        self.queued: dict[str, float] = {}

    def _enqueue_batch(self, batch: list[Post]) -> None:
        super()._enqueue_batch(batch)
        now = time.perf_counter()
        for post in batch:
            self.queued[post.version_key] = now


def make_messages(channel: str, bare: int, start: int, count: int) -> list[ChannelMessage]:
    base = [p for p in parse_file(SAMPLE / "mfa_russia_sample.json").posts if p.text]
    messages = []
    for number in range(count):
        template = base[number % len(base)]
        post = template.with_changes(
            channel=channel, channel_id=-(CHANNEL_ID_BASE + bare), message_id=start + number,
            text=f"{template.text} #{start + number}", album_id=None, album_items=(),
            edited=False, edit_date=None, source="mtproto", forward=None, reply_to=None,
        )  # fmt: skip
        messages.append(ChannelMessage(bare, post.message_id, post=post))
    return messages


async def run_pool(
    url: str, stream: Stream, channels: list[str], settings: MtprotoSettings
) -> tuple[AccountPool, TimedEnqueuer, asyncio.Event, asyncio.Task[None], list[object]]:
    connection = redis.Redis.from_url(url)
    store, channel_store = AccountStore.from_url(url), ChannelStore.from_url(url)
    sink = TimedEnqueuer(connection)
    writer = ChannelWriter(sink, channel_store, store)

    async def watch() -> list[str]:
        return channels

    pool = AccountPool(["bench"], stream.client, store=store, writer=writer, settings=settings,
                       watch=watch)  # type: ignore[arg-type]  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(pool.run(stop))
    return pool, sink, stop, task, [store, channel_store, connection]


async def until(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish")
        await asyncio.sleep(0.005)


async def close(stop: asyncio.Event, task: asyncio.Task[None], resources: list[object]) -> None:
    stop.set()
    await task
    for resource in resources:
        closer = getattr(resource, "aclose", None)
        if closer is not None:
            await closer()
        else:
            resource.close()  # type: ignore[attr-defined]


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    ms = {name: cuts[q - 1] * 1000 for name, q in (("p50", 50), ("p90", 90), ("p99", 99))}
    listed = ", ".join(f"{name} {value:.1f} ms" for name, value in ms.items())
    return f"{listed}, max {max(values) * 1000:.1f} ms"


async def live(url: str, updates: int, rate: float | None) -> None:
    label = "paced" if rate else "burst"
    names = [f"bench_{label}{n:02d}" for n in range(20)]
    stream = Stream({name: 100 + n for n, name in enumerate(names)})
    client = redis.Redis.from_url(url)
    for name in names:
        client.hset(f"tgwatch:source:{name}", "watermark", 0)
    settings = MtprotoSettings(api_id=1, api_hash="x", lease_seconds=30.0)
    pool, sink, stop, task, resources = await run_pool(url, stream, names, settings)
    await until(lambda: "bench" in pool.runners and all(
        t.synced for t in pool.runners["bench"].tracked.values()
    ) and len(pool.runners["bench"].tracked) == len(names))  # fmt: skip
    per_channel = updates // len(names)
    messages = [m for n, name in enumerate(names)
                for m in make_messages(name, 100 + n, 1, per_channel)]  # fmt: skip
    messages.sort(key=lambda m: m.message_id)  # channels interleaved, as a real feed
    started = time.perf_counter()
    for number, message in enumerate(messages):
        stream.send(message)
        if rate:
            await asyncio.sleep(max(0.0, started + (number + 1) / rate - time.perf_counter()))
    await until(lambda: len(sink.queued) >= len(messages))
    took = time.perf_counter() - started
    latencies = [sink.queued[k] - stream.arrived[k] for k in stream.arrived]
    how = f"paced at {rate:.0f}/s" if rate else "all at once"
    print(f"live, {len(messages)} updates {how} over 20 channels: {len(messages) / took:,.0f} "
          f"posts/s; update -> on the queue: {percentiles(latencies)}")  # fmt: skip
    await close(stop, task, resources)
    client.close()


async def catch_up(url: str, updates: int) -> None:
    name = "bench_catchup"
    stream = Stream({name: 999})
    stream.messages[999] = make_messages(name, 999, 1, updates)
    client = redis.Redis.from_url(url)
    client.hset(f"tgwatch:source:{name}", "watermark", 0)
    pages = updates // 100 + 1
    settings = MtprotoSettings(api_id=1, api_hash="x", lease_seconds=30.0, catchup_pages=pages)
    started = time.perf_counter()
    _pool, sink, stop, task, resources = await run_pool(url, stream, [name], settings)
    await until(lambda: len(sink.queued) >= updates)
    took = time.perf_counter() - started
    print(f"catch-up, one channel {updates} posts behind its watermark: {updates / took:,.0f} "
          f"posts/s ({took:.2f} s from start, {pages} pages of 100)")  # fmt: skip
    await close(stop, task, resources)
    client.close()


def mapping(updates: int) -> None:
    """Telethon reading an update's bytes, then the mapping into a post, per message."""
    from telethon.extensions import BinaryReader
    from telethon.tl import types

    from service.sources.mtproto.mapping import events_from_updates

    base = [p for p in parse_file(SAMPLE / "mfa_russia_sample.json").posts if p.text]
    channel = types.Channel(id=1001, title="Russian MFA", photo=types.ChatPhotoEmpty(),
                            date=base[0].date, access_hash=7, username="mfa_russia",
                            broadcast=True)  # fmt: skip
    raw = []
    for number in range(updates):
        post = base[number % len(base)]
        entities = [types.MessageEntityHashtag(0, 1)] if post.text else []
        message = types.Message(id=number + 1, peer_id=types.PeerChannel(1001), date=post.date,
                                message=post.text, post=True, entities=entities,
                                views=100, forwards=1)  # fmt: skip
        update = types.UpdateNewChannelMessage(message=message, pts=number, pts_count=1)
        raw.append(bytes(types.Updates([update], [], [channel], post.date, 0)))
    started = time.perf_counter()
    mapped = 0
    for data in raw:
        mapped += len(events_from_updates(BinaryReader(data).tgread_object()))
    took = time.perf_counter() - started
    print(f"mapping: {mapped} updates read by Telethon and mapped to posts: "
          f"{took / updates * 1e6:.0f} us per update ({updates / took:,.0f}/s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        handle = None
        if args.redis_url:
            url = args.redis_url
        else:
            handle = start_embedded(Path(tmp))
            url = handle.url
        client = redis.Redis.from_url(url)
        client.flushdb()
        asyncio.run(live(url, args.updates, args.rate))
        asyncio.run(live(url, args.updates, None))
        asyncio.run(catch_up(url, args.updates))
        mapping(args.updates)
        jobs = posts_queue(client).count
        print(f"jobs on the posts queue: {jobs}")
        client.close()
        if handle is not None:
            handle.close()


if __name__ == "__main__":
    main()
