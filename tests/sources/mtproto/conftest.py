"""The pool's test rig: a fake Telegram behind the source's interface, a real Redis, pools that
run as they do in a listener, and waiting for conditions with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from service.config import MtprotoSettings
from service.core.post import Post
from service.metrics import Metrics
from service.sources.mtproto.pool import AccountPool
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore
from service.store.posts import PostStore
from tests.sources import ListSink
from tests.sources.mtproto.fake import FakeTelegram

# Short leases so takeovers happen within seconds; rounds every half second.
LEASE = 1.5


async def wait_for(
    condition: Callable[[], object | Awaitable[object]], seconds: float = 15.0, what: str = ""
) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took. Fails after ``seconds``."""
    start = time.monotonic()
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            pytest.fail(f"condition not met within {seconds} s: {what or condition}")
        await asyncio.sleep(0.02)


class CountingSink(ListSink):
    """A ListSink that also keeps every put, duplicates included (a double read shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[Post] = []

    async def put(self, post: Post) -> bool:
        self.puts.append(post)
        return await super().put(post)

    def put_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for post in self.puts:
            counts[post.version_key] = counts.get(post.version_key, 0) + 1
        return counts


def mtproto_settings(**overrides: Any) -> MtprotoSettings:
    values: dict[str, Any] = {
        "api_id": 1, "api_hash": "not-a-secret", "lease_seconds": LEASE, "page_size": 5,
        "catchup_pages": 3, "resync_seconds": 3600.0, "flood_handoff_seconds": 60.0,
        "fallback": True,
    }  # fmt: skip
    values.update(overrides)
    return MtprotoSettings(**values)


@dataclass
class Running:
    pool: AccountPool
    stop: asyncio.Event
    metrics: Metrics
    store: AccountStore
    channels: ChannelStore
    task: asyncio.Task[None] | None = None

    def tracked(self, account: str) -> set[str]:
        """The channels ``account`` reads in this pool (none before it starts)."""
        runner = self.pool.runners.get(account)
        return set() if runner is None else set(runner.tracked)

    def synced(self, account: str, *channels: str) -> bool:
        """``account`` reads ``channels`` (all it has, if none named), each caught up."""
        runner = self.pool.runners.get(account)
        if runner is None:
            return False
        names = channels or tuple(runner.tracked)
        return all(n in runner.tracked and runner.tracked[n].synced for n in names)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@dataclass
class Rig:
    redis_url: str
    world: FakeTelegram = field(default_factory=FakeTelegram)
    sink: CountingSink = field(default_factory=CountingSink)
    watch: list[str] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sync = redis.Redis.from_url(self.redis_url)
        self.posts = PostStore(self.sync)
        self.store = AccountStore.from_url(self.redis_url)
        self.channels = ChannelStore.from_url(self.redis_url)

    async def watched(self) -> list[str]:
        return list(self.watch)

    def pool(self, accounts: list[str], **overrides: Any) -> Running:
        """A pool with Redis clients of its own, as another process would have (not started)."""
        store = AccountStore.from_url(self.redis_url)
        channels = ChannelStore.from_url(self.redis_url)
        metrics = Metrics(CollectorRegistry())
        writer = ChannelWriter(self.sink, channels, store, self.posts, metrics=metrics.mtproto)
        pool = AccountPool(
            accounts, self.world.client, store=store, writer=writer,
            settings=mtproto_settings(**overrides), watch=self.watched, metrics=metrics.mtproto,
        )  # fmt: skip
        running = Running(pool, asyncio.Event(), metrics, store, channels)
        self.running.append(running)
        return running

    def start(self, accounts: list[str], **overrides: Any) -> Running:
        running = self.pool(accounts, **overrides)
        running.task = asyncio.create_task(running.pool.run(running.stop))
        return running

    async def stop(self, running: Running) -> None:
        running.stop.set()
        assert running.task is not None
        await running.task

    async def crash(self, running: Running) -> None:
        """The process dies: nothing is given back, its leases run out on their own."""

        async def nothing() -> None:
            return None

        assert running.task is not None
        running.pool.close = nothing  # type: ignore[method-assign]
        for task in running.pool._tasks.values():
            task.cancel()
        running.task.cancel()
        await asyncio.gather(running.task, *running.pool._tasks.values(), return_exceptions=True)

    async def set_watermark(self, channel: str, watermark: int) -> None:
        await self.channels.record_seen(channel, {}, watermark)

    async def holders(self) -> dict[str, str | None]:
        return await self.store.holders(sorted(self.watch))

    def emitted(self, channel: str | None = None) -> list[Post]:
        return [p for p in self.sink.posts if channel is None or p.channel_key == channel]

    async def close(self) -> None:
        for running in self.running:
            running.stop.set()
        await asyncio.gather(*(r.task for r in self.running if r.task), return_exceptions=True)
        for running in self.running:
            await running.store.aclose()
            await running.channels.aclose()
        await self.store.aclose()
        await self.channels.aclose()
        self.sync.close()


@pytest.fixture
async def rig(redis_url: str) -> AsyncIterator[Rig]:
    setup = Rig(redis_url)
    yield setup
    await setup.close()
