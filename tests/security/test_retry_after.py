"""Finding 6 (deliveries): a webhook answering ``Retry-After: inf`` (or nan, or 1e308) must not
loop its delivery forever, and a delivery whose retry cannot be scheduled at all is
dead-lettered — never re-run by recovery again and again."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from service import constants
from service.core.delivery import DeliveryJob, DeliveryStatus, parse_target
from tests.delivery.conftest import SECRET, ContextFactory, Scheduled, make_alert
from workers.delivery.dispatch import process

SCHEDULE = (5.0, 30.0, 120.0)


@pytest.fixture
async def busy_endpoint() -> AsyncIterator[tuple[str, list[str]]]:
    """An endpoint that answers 503 with the Retry-After header the test sets."""
    header: list[str] = ["inf"]

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": header[0]})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", header
    await runner.cleanup()


@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "-5", "1e308", "9" * 400, "0x10"])
async def test_retry_after_cannot_park_or_loop_a_delivery(
    busy_endpoint: tuple[str, list[str]], make_context: ContextFactory, value: str
) -> None:
    url, header = busy_endpoint
    header[0] = value
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=SCHEDULE, webhook_jitter=0.0)
    job = DeliveryJob(make_alert(), parse_target({"webhook": {"url": url, "secret": SECRET}}))
    outcomes = [await process(context, job)]
    delays: list[float] = []
    while scheduled.jobs:  # run each retry at once, keeping the delay it was scheduled with
        again, delay = scheduled.jobs.pop(0)
        delays.append(delay)
        outcomes.append(await process(context, again))
        assert len(outcomes) <= len(SCHEDULE) + 1, "the delivery loops"
    assert all(math.isfinite(d) and 0 <= d <= constants.RETRY_DELAY_MAX_SECONDS for d in delays)
    assert len(delays) == len(SCHEDULE)  # one retry per step of the schedule, then it stops
    [dead] = context.ledger.dead_letters()
    assert dead["reason"] == "HTTP 503" and dead["job"]["attempt"] == len(SCHEDULE)
    assert outcomes[-1].status == DeliveryStatus.RETRY and scheduled.jobs == []


async def test_a_retry_that_cannot_be_scheduled_is_dead_lettered(
    busy_endpoint: tuple[str, list[str]],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service.core import retry

    def broken(*_args: object, **_kwargs: object) -> float:
        raise OverflowError("a schedule that cannot be computed")

    monkeypatch.setattr(retry.RetryPolicy, "delay", broken)
    url, _header = busy_endpoint
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=SCHEDULE)
    job = DeliveryJob(make_alert(), parse_target({"webhook": {"url": url, "secret": SECRET}}))
    await process(context, job)
    assert scheduled.jobs == []
    [dead] = context.ledger.dead_letters()
    assert "schedule" in dead["reason"]
