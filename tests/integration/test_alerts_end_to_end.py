"""From an ingested file to alerts received by a real webhook receiver and a fake Telegram chat."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import redis

from service.core.rules import parse_rules
from service.core.signing import verify
from service.core.targets import TargetPolicy
from service.queue import Enqueuer
from service.sources.files import ingest_files
from service.store.matches import read_alerts
from service.store.rules import RuleStore
from tests.delivery.conftest import SECRET
from tests.delivery.receiver import WebhookReceiver
from tests.fakes.botapi import FakeBotAPI

# Real `tgwatch` processes: left out of `make test-fast`.
pytestmark = pytest.mark.slow

CHAT = 4242

RULES = """
entities:
  - id: zakharova
    name: Maria Zakharova
    aliases: ["Maria Zakharova", "Zakharova", "Мария Захарова"]
subscriptions:
  - id: unga
    name: UN General Assembly
    query: '#UNGA79'
    notify:
      - webhook: {{url: "{url}", secret: "{secret}"}}
      - telegram: {chat}
  - id: spokeswoman
    name: The spokeswoman
    query: 'entity:zakharova'
    notify:
      - telegram: {chat}
  - id: nothing
    query: 'кулинария OR recipe'
    notify:
      - telegram: {chat}
"""


@pytest.fixture
async def receiver() -> WebhookReceiver:
    hook = WebhookReceiver(secrets=[SECRET])
    await hook.start()
    yield hook  # type: ignore[misc]
    await hook.stop()


async def test_ingest_then_burst_worker_delivers_every_alert(
    redis_url: str,
    redis_client: redis.Redis,
    fixtures_dir: Path,
    fake_botapi: FakeBotAPI,
    receiver: WebhookReceiver,
) -> None:
    client = redis_client
    # Telegram's per-chat pace (1 message/s) scaled down on both sides, so a burst of alerts to
    # one chat goes out within the test's time and the fake still enforces the limit.
    fake_botapi.per_chat_interval = 0.05
    rules = parse_rules(
        RULES.format(url=receiver.url, secret=SECRET, chat=CHAT),
        targets=TargetPolicy(allow_loopback=True),
    )
    RuleStore(client).replace(rules)

    enqueuer = Enqueuer(client, batch_size=10, batch_wait=0.05)
    await ingest_files([fixtures_dir / "mfa_russia_sample.json"], enqueuer)
    await enqueuer.close()

    # A real `tgwatch worker --burst` process; the fake Telegram and the receiver keep serving
    # on this test's event loop meanwhile.
    env = {
        **os.environ,
        "TGWATCH_REDIS_URL": redis_url,
        "TGWATCH_TELEGRAM_TOKEN": fake_botapi.token,
        "TGWATCH_TELEGRAM_API_URL": fake_botapi.base_url,
        "TGWATCH_DELIVERY_PER_CHAT_INTERVAL": "0.06",
        "TGWATCH_DELIVERY_MAX_INLINE_WAIT": "30",
        "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "worker", "--burst", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, output.decode()
    assert fake_botapi.token not in output.decode()

    alerts = [alert for _entry, alert in read_alerts(client, count=100)]
    by_sub: dict[str, list[str]] = {}
    for alert in alerts:
        by_sub.setdefault(alert.subscription_id, []).append(alert.post_key)
    assert by_sub.get("unga"), "posts tagged #UNGA79 alert the unga subscription"
    assert by_sub.get("spokeswoman"), "posts naming Zakharova alert through the watched entity"
    assert "nothing" not in by_sub

    # The webhook got each unga alert once, every signature verified.
    hooks = [r for r in receiver.received if r.verified]
    assert len(hooks) == len(receiver.received)
    assert sorted(r.webhook_id for r in hooks) == sorted(
        a.id for a in alerts if a.subscription_id == "unga"
    )
    for item in hooks:
        verify(SECRET, item.headers, item.body)
        assert item.payload["subscription"]["id"] == "unga"

    # The chat got one message per alert, no 429 from the fake server.
    sent = [m for m in fake_botapi.sent if m["chat_id"] == CHAT]
    assert len(sent) == len(alerts)
    assert fake_botapi.too_many_requests == 0
    assert all("t.me/mfa_russia/" in m["text"] for m in sent)
