"""`tgwatch listen --source mtproto` as wired: the same sink (the queue) as every source, the
preview fallback, status and readiness, and no Telethon in processes that do not use it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from structlog.testing import capture_logs

from service.config import MtprotoSettings, Settings
from service.metrics import Metrics
from service.queue import Enqueuer, posts_queue
from service.runtime import build_listeners
from service.sources.mtproto.listener import MtprotoListener, build_mtproto_listener
from service.sources.mtproto.pool import AccountPool
from service.sources.mtproto.sessions import SessionVault
from service.sources.mtproto.writer import ChannelWriter
from service.sources.preview import PreviewPoller
from service.status import collect_status, render_status
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore
from service.store.posts import PostStore
from tests.fakes.preview_server import FakePreviewServer
from tests.sources.mtproto.conftest import mtproto_settings, wait_for
from tests.sources.mtproto.fake import FakeTelegram

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def preview() -> AsyncIterator[FakePreviewServer]:
    server = FakePreviewServer()
    await server.start()
    yield server
    await server.stop()


def queued_posts(client: redis.Redis) -> list[dict[str, object]]:
    return [post for job in posts_queue(client).jobs for post in job.args[0]]


async def test_posts_from_accounts_and_from_the_fallback_reach_the_queue_once(
    redis_url: str, redis_client: redis.Redis, preview: FakePreviewServer
) -> None:
    world = FakeTelegram()
    world.add_channel("openchan", posts=2)
    world.add_channel("closedchan").refuse = {"a1": "private"}
    preview.add_channel("closedchan", "Closed channel", chat_id=9)
    preview.add_posts("closedchan", 3)
    store, channels = AccountStore.from_url(redis_url), ChannelStore.from_url(redis_url)
    metrics = Metrics(CollectorRegistry())
    sink = Enqueuer(redis_client, batch_wait=0.05, metrics=metrics)
    writer = ChannelWriter(sink, channels, store, PostStore(redis_client), metrics=metrics.mtproto)

    async def watch() -> list[str]:
        return ["openchan", "closedchan"]

    settings = mtproto_settings()
    await channels.record_seen("openchan", {}, 0)
    pool = AccountPool(["a1"], world.client, store=store, writer=writer, settings=settings,
                       watch=watch, metrics=metrics.mtproto)  # fmt: skip
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        poller = PreviewPoller([], sink, channels, http, base_url=preview.base_url, interval=0.5,
                               jitter=0.0, channel_source=pool.fallback_channels,
                               refresh_every=0.2, metrics=metrics)  # fmt: skip
        listener = MtprotoListener(pool, poller)
        task = asyncio.create_task(listener.run(stop))
        try:
            await wait_for(listener.ready)
            await wait_for(lambda: len(queued_posts(redis_client)) == 5, what="2 + 3 posts")
            world.publish(world.channel("openchan"), "live from an account")
            await wait_for(lambda: len(queued_posts(redis_client)) == 6, what="the live post")
            latency = metrics.registry.get_sample_value(
                "tgwatch_mtproto_update_to_enqueue_seconds_count"
            )
            assert latency == 1.0  # the live post, timed from its update to the queue
        finally:
            stop.set()
            await task
            await sink.close()
    posts = queued_posts(redis_client)
    by_source = sorted((p["channel"], p["source"]) for p in posts)
    assert by_source == [("closedchan", "preview")] * 3 + [("openchan", "mtproto")] * 3
    keys = [f"{p['channel']}/{p['message_id']}@{p['content_hash']}" for p in posts]
    assert len(keys) == len(set(keys))
    report = collect_status(redis_client)
    rows = {row["channel"]: row for row in report["channels"]}
    assert rows["closedchan"]["fallback"] == "refused: private"
    assert rows["closedchan"]["source"] == "preview"
    assert rows["openchan"]["source"] == "mtproto"
    text = render_status(report)
    assert "no account reads it (refused: private)" in text
    assert "Accounts (MTProto): 1" in text
    await store.aclose()
    await channels.aclose()


async def test_it_is_built_only_when_configured(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    sink = Enqueuer(redis_client)
    base = Settings(redis_url=redis_url, channels=["openchan"],
                    mtproto=MtprotoSettings(session_dir=tmp_path))  # fmt: skip
    async with AsyncExitStack() as stack:
        with capture_logs() as logs:
            built = await build_mtproto_listener(base, redis_client, redis_url, sink, stack,
                                                 explicit=True)  # fmt: skip
        assert built is None
        assert [e["event"] for e in logs] == ["mtproto_not_configured"]
        app = MtprotoSettings(session_dir=tmp_path, api_id=1, api_hash=SecretStr("not-a-hash"))
        base = base.model_copy(update={"mtproto": app})
        with capture_logs() as logs:
            assert await build_listeners(base, redis_client, redis_url, sink, stack,
                                         metrics=Metrics(CollectorRegistry()),
                                         sources=frozenset({"mtproto"})) == []  # fmt: skip
        assert [e["event"] for e in logs] == ["mtproto_no_accounts"]
        SessionVault(tmp_path).save("main", SecretStr("a-session"))
        checks: dict[str, object] = {}
        listeners = await build_listeners(base, redis_client, redis_url, sink, stack,
                                          metrics=Metrics(CollectorRegistry()),
                                          sources=frozenset({"mtproto"}),
                                          checks=checks)  # type: ignore[arg-type]  # fmt: skip
        (listener,) = listeners
        assert isinstance(listener, MtprotoListener)
        assert listener.pool.accounts == ["main"]
        assert "mtproto" in checks


def test_processes_without_the_mtproto_source_never_import_telethon() -> None:
    code = (
        "import sys; import service.cli, service.runtime, service.status, service.ops; "
        "from service.sources.mtproto import listener, pool; "
        "print(sorted(m for m in sys.modules if m.startswith('telethon')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"
