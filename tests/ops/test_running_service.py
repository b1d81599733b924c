"""Every metric the dashboard and the alert rules query is exported by the running service.

A real `tgwatch listen` (web-preview poller on a local preview server) and a real
`tgwatch worker`, each serving /metrics on its own port, process a channel whose posts match
subscriptions delivering to a local webhook receiver and a local Telegram; then both endpoints
are scraped and the union must hold every queried name.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from service.core.rules import parse_rules
from service.store.posts import PostStore
from service.store.rules import RuleStore
from tests.delivery.conftest import SECRET
from tests.delivery.receiver import WebhookReceiver
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.preview_server import FakePreviewServer
from tests.ops.names import exported_sample_names, missing_from_exposition

RULES = """
subscriptions:
  - id: ceasefire
    query: 'ceasefire OR перемирие'
    notify:
      - webhook: {{url: "{url}", secret: "{secret}"}}
      - telegram: 5150
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def preview() -> AsyncIterator[FakePreviewServer]:
    server = FakePreviewServer()
    await server.start()
    server.add_channel("warnews", "War news")
    server.add_posts("warnews", 3, "Talks on a ceasefire, round {id}")
    server.add_posts("warnews", 2, "Переговоры о перемирии, раунд {id}")
    yield server
    await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver(secrets=[SECRET])
    await hook.start()
    yield hook
    await hook.stop()


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", *args, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
                if response.status_code == 200:
                    return response.text
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"no /metrics on port {port}")


async def test_dashboard_and_alert_metrics_are_exported(
    redis_url: str,
    redis_client: redis.Redis,
    preview: FakePreviewServer,
    receiver: WebhookReceiver,
    fake_botapi: FakeBotAPI,
) -> None:
    client = redis_client
    RuleStore(client).replace(parse_rules(RULES.format(url=receiver.url, secret=SECRET)))
    listen_port, worker_port = free_port(), free_port()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TGWATCH_")},
        "TGWATCH_REDIS_URL": redis_url,
        "TGWATCH_METRICS_HOST": "127.0.0.1",
        "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
    }
    listener = await _spawn(
        ["listen", "--source", "preview"],
        {**base, "TGWATCH_CHANNELS": "warnews", "TGWATCH_PREVIEW_URL": preview.base_url,
         "TGWATCH_METRICS_PORT": str(listen_port)},
    )  # fmt: skip
    worker = await _spawn(
        ["worker"],
        {**base, "TGWATCH_METRICS_PORT": str(worker_port),
         "TGWATCH_TELEGRAM_TOKEN": fake_botapi.token,
         "TGWATCH_TELEGRAM_API_URL": fake_botapi.base_url},
    )  # fmt: skip
    try:
        store = PostStore(client)
        for _ in range(300):
            done = len(store.recent("warnews", 10)) == 5 and len(receiver.received) >= 5
            if done and len(fake_botapi.sent) >= 5:
                break
            await asyncio.sleep(0.1)
        assert len(store.recent("warnews", 10)) == 5
        exposition = await _scrape(listen_port) + "\n" + await _scrape(worker_port)
    finally:
        for proc in (listener, worker):
            proc.terminate()
        for proc in (listener, worker):
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert fake_botapi.token.encode() not in err
    assert missing_from_exposition(exposition, strict=False) == set()
    samples = exported_sample_names(exposition)
    for name in ("tgwatch_posts_seen_total", "tgwatch_posts_processed_total",
                 "tgwatch_deliveries_total", "tgwatch_end_to_end_latency_seconds_bucket",
                 "tgwatch_queue_depth", "tgwatch_workers"):  # fmt: skip
        assert name in samples, name
