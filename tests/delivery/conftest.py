"""Delivery fixtures: a webhook receiver, and contexts whose retries the test drives."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from service.config import DeliverySettings
from service.core.delivery import DeliveryJob, Outcome
from service.core.model import Alert, Highlight
from service.delivery_queue import DELIVER
from service.metrics import Metrics
from tests.delivery.receiver import WebhookReceiver
from workers.delivery.context import DeliveryContext
from workers.delivery.dispatch import process

SECRET = "whsec_" + base64.b64encode(b"tgwatch-test-secret-key-32-bytes").decode()


def make_alert(index: int = 1, subscription_id: str = "lavrov", text: str = "") -> Alert:
    text = text or f"Сергей Лавров & партнёры <{index}>"
    post = {
        "channel": "mfa_russia",
        "channel_id": -1001234567890,
        "channel_title": "МИД России",
        "message_id": index,
        "date": "2024-05-01T10:00:00+00:00",
        "edit_date": None,
        "edited": False,
        "text": text,
        "link": f"https://t.me/mfa_russia/{index}",
        "content_hash": f"h{index}",
    }
    start = text.find("Лавров")
    highlights = (Highlight(start, start + 6, "Лавров"),) if start >= 0 else ()
    return Alert(subscription_id=subscription_id, post=post, highlights=highlights,
                 matched_at=1714557600.0 + index)  # fmt: skip


class Scheduled:
    """Collects what the context would enqueue, so a test runs retries itself."""

    def __init__(self) -> None:
        self.jobs: list[tuple[DeliveryJob, float]] = []
        self.calls: list[tuple[str, dict[str, Any], float]] = []  # other jobs (digest flushes)

    def __call__(self, function: str, payload: dict[str, Any], _description: str,
                 delay: float) -> None:  # fmt: skip
        if function == DELIVER:
            self.jobs.append((DeliveryJob.from_dict(payload), delay))
        else:
            self.calls.append((function, payload, delay))

    async def run_all(self, context: DeliveryContext, max_rounds: int = 50) -> list[Outcome]:
        """Run scheduled jobs (waiting their delays) until none is left."""
        outcomes = []
        for _ in range(max_rounds):
            if not self.jobs:
                break
            job, delay = self.jobs.pop(0)
            await asyncio.sleep(delay)
            outcomes.append(await process(context, job))
        return outcomes


ContextFactory = Callable[..., DeliveryContext]


@pytest.fixture
async def make_context(redis_client: redis.Redis) -> AsyncIterator[ContextFactory]:
    made: list[DeliveryContext] = []

    def factory(*, schedule: Scheduled | None = None, bot: Any = None,
                **settings: Any) -> DeliveryContext:  # fmt: skip
        settings.setdefault("allow_loopback_targets", True)
        settings.setdefault("webhook_timeout", 5.0)
        context = DeliveryContext.build(
            redis_client,
            DeliverySettings(**settings),
            Metrics(),
            bot=bot,
            schedule=schedule,
        )
        made.append(context)
        return context

    yield factory
    for context in made:
        await context.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver(secrets=[SECRET])
    await server.start()
    yield server
    await server.stop()
