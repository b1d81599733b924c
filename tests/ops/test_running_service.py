"""Every metric the dashboard and the alert rules query is exported by the running service.

A real `tgwatch listen` (web-preview poller on a local preview server) and a real
`tgwatch worker`, each serving /metrics on its own port, process a channel whose posts match
subscriptions delivering to a local webhook receiver and a local Telegram; then both endpoints
are scraped and the union must hold every queried name.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from service.core.rules import parse_rules
from service.core.targets import TargetPolicy
from service.sources import bot as bot_source
from service.sources import preview as preview_source
from service.store.deliveries import Ledger
from service.store.posts import PostStore
from service.store.rules import RuleStore
from tests.delivery.conftest import SECRET
from tests.delivery.receiver import WebhookReceiver
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.preview_server import FakePreviewServer
from tests.ops.names import (
    FREE_LABELS,
    exported_sample_names,
    missing_from_exposition,
    promtool_input_series,
    queried_label_values,
    samples,
)
from tests.sources.mtproto.test_metrics import is_mtproto_series

# Real `tgwatch` processes: left out of `make test-fast`.
pytestmark = pytest.mark.slow

RULES = """
subscriptions:
  - id: ceasefire
    query: 'ceasefire OR перемирие'
    notify:
      - webhook: {{url: "{url}", secret: "{secret}"}}
      - telegram: 5150
  - id: ceasefire-broken-hook
    query: 'ceasefire OR перемирие'
    notify:
      - webhook: {{url: "{broken}", secret: "{secret}"}}
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
    server.fail_next("warnews", 500)  # a real source error, counted as the alerts ask
    yield server
    await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver(secrets=[SECRET])
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def broken() -> AsyncIterator[WebhookReceiver]:
    """An endpoint that always answers 500: with one retry allowed, every alert to it fails
    (``failed``), fails again and is dead-lettered (``dead_letter``)."""
    hook = WebhookReceiver(secrets=[SECRET], fail_first=1_000_000)
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
    *,
    redis_client: redis.Redis,
    preview: FakePreviewServer,
    receiver: WebhookReceiver,
    broken: WebhookReceiver,
    fake_botapi: FakeBotAPI,
) -> None:
    client = redis_client
    rules = RULES.format(url=receiver.url, broken=broken.url, secret=SECRET)
    RuleStore(client).replace(parse_rules(rules, targets=TargetPolicy(allow_loopback=True)))
    listen_port, worker_port = free_port(), free_port()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TGWATCH_")},
        "TGWATCH_REDIS_URL": redis_url,
        "TGWATCH_METRICS_HOST": "127.0.0.1",
        "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
        "TGWATCH_DELIVERY_WEBHOOK_SCHEDULE": "0.2",
        "TGWATCH_DELIVERY_WEBHOOK_JITTER": "0",
    }
    # The listener's bot source talks to a Bot API that is down (a real network error); the
    # worker's Telegram deliveries go to the local fake Bot API.
    listener = await _spawn(
        ["listen"],
        {**base, "TGWATCH_CHANNELS": "warnews", "TGWATCH_PREVIEW_URL": preview.base_url,
         "TGWATCH_PREVIEW_INTERVAL": "0.5",
         "TGWATCH_TELEGRAM_TOKEN": fake_botapi.token,
         "TGWATCH_TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}",
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
            done = len(store.recent("warnews", 10)) == 5 and len(receiver.delivered) >= 5
            dead = len(Ledger(client).dead_letters()) == 5
            if done and dead and len(fake_botapi.sent) >= 5:
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
    _assert_queried_labels_are_real(exposition)
    samples = exported_sample_names(exposition)
    for name in ("tgwatch_posts_seen_total", "tgwatch_posts_processed_total",
                 "tgwatch_deliveries_total", "tgwatch_end_to_end_latency_seconds_bucket",
                 "tgwatch_queue_depth", "tgwatch_workers"):  # fmt: skip
        assert name in samples, name


def _assert_queried_labels_are_real(exposition: str) -> None:
    """The label values the dashboard, the alert rules and their promtool tests use are those
    the code emits — after real events, not made-up series (issue 9: a failure-ratio alert that
    could never fire because workers counted `retry`/`dead` while it asked for `failed`)."""
    found = samples(exposition)
    for metric, label, op, wanted in queried_label_values():
        values = {
            labels.get(label) for name, labels, _ in found if family_of(name) == family_of(metric)
        }
        pattern = re.compile(wanted if op == "=~" else re.escape(wanted))
        assert any(v is not None and pattern.fullmatch(v) for v in values), (metric, label, wanted)
    for metric, labels in promtool_input_series():
        if is_mtproto_series(metric):  # no process here runs an account: see that test module
            continue
        exported = [dict(lbl) for name, lbl, _ in found if name == metric]
        assert exported, f"alerts_test.yml feeds {metric}, which nothing exports"
        keys = {k for lbl in exported for k in lbl} - FREE_LABELS
        assert set(labels) == keys, (metric, labels, keys)
        for key, value in labels.items():
            allowed = {lbl.get(key) for lbl in exported}
            if key == "source":  # a source that saw no post in this run still has its name
                allowed |= {bot_source.SOURCE, preview_source.SOURCE}
            assert value in allowed, (metric, key, value)
    counted = {(lbl.get("target"), lbl.get("outcome")): value for name, lbl, value in found
               if name == "tgwatch_deliveries_total"}  # fmt: skip
    # The real failures were counted as the failure-ratio alert asks.
    assert counted[("webhook", "failed")] == 5
    assert counted[("webhook", "dead_letter")] == 5
    assert counted[("webhook", "sent")] == 5
    dead_gauge = {v for name, _, v in found if name == "tgwatch_webhook_dead_letters"}
    assert dead_gauge == {5.0}  # read from Redis by every process alike
    matched = {
        lbl.get("kind"): value for name, lbl, value in found if name == "tgwatch_matches_total"
    }
    assert matched["keyword"] >= 5  # the subscription's kind, not a constant


def family_of(sample_name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if sample_name.endswith(suffix):
            return sample_name.removesuffix(suffix)
    return sample_name
