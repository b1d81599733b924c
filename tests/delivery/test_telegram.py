"""Telegram delivery through aiogram against the fake Bot API server (which enforces limits)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram import Bot
from structlog.testing import capture_logs

from service.core.delivery import DeliveryJob, parse_target
from service.core.delivery import DeliveryStatus as oc  # noqa: N813 - short in tables of outcomes
from service.telegram import make_bot
from tests.delivery.conftest import ContextFactory, Scheduled, make_alert
from tests.fakes.botapi import TOKEN, FakeBotAPI
from workers.delivery import digest
from workers.delivery.context import DeliveryContext
from workers.delivery.dispatch import process
from workers.delivery.ratelimit import TelegramLimits, TelegramRateLimiter

PRIVATE = (1001, 1002, 1003)
GROUP = -1009999


@pytest.fixture
async def bot(fake_botapi: FakeBotAPI) -> AsyncIterator[Bot]:
    bot = make_bot(TOKEN, fake_botapi.base_url, timeout=10)
    yield bot
    await bot.session.close()


def _job(chat: int, index: int = 1, **target: object) -> DeliveryJob:
    return DeliveryJob(make_alert(index), parse_target({"telegram": chat, **target}), 0, "Lavrov")


async def _run_worker(context: DeliveryContext, jobs: asyncio.Queue[DeliveryJob],
                      outcomes: list[str]) -> None:  # fmt: skip
    """One simulated worker: deferred deliveries are retried after the wait they were given."""
    while not jobs.empty():
        job = jobs.get_nowait()
        scheduled = Scheduled()
        context.schedule = scheduled
        outcome = await process(context, job)
        while outcome.status in (oc.DEFERRED, oc.IN_FLIGHT):
            [(job, delay)] = scheduled.jobs
            scheduled.jobs.clear()
            await asyncio.sleep(delay)
            outcome = await process(context, job)
        outcomes.append(outcome.status)


async def test_burst_is_held_under_the_limits(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    # Per-chat spacing scaled down 10x on both sides to keep the test short; the global
    # 30/s limit is Telegram's real one.
    # The fake enforces looser limits than the limiter keeps: arrival times jitter on a loaded
    # machine, and without the limiter six workers would still break every one of them.
    fake_botapi.per_chat_interval = 0.05
    fake_botapi.group_per_minute = 60
    fake_botapi.global_per_second = 40
    limits = {"per_chat_interval": 0.1, "group_per_minute": 40}
    workers = [make_context(bot=bot, **limits) for _ in range(6)]  # six workers, one Redis
    jobs: asyncio.Queue[DeliveryJob] = asyncio.Queue()
    for index in range(40):
        for chat in (*PRIVATE, GROUP):
            jobs.put_nowait(_job(chat, index))
    outcomes: list[str] = []
    started = time.monotonic()
    await asyncio.gather(*(_run_worker(context, jobs, outcomes) for context in workers))
    elapsed = time.monotonic() - started
    assert outcomes == [oc.SENT] * 160
    assert fake_botapi.too_many_requests == 0
    assert len(fake_botapi.sent) == 160
    assert {chat: sum(1 for s in fake_botapi.sent if s["chat_id"] == chat)
            for chat in (*PRIVATE, GROUP)} == dict.fromkeys((*PRIVATE, GROUP), 40)  # fmt: skip
    assert elapsed >= 160 / 30  # the global limit really paced the burst
    sent = fake_botapi.sent[0]
    assert sent["parse_mode"] == "HTML"
    assert sent["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "unwatch:lavrov"


async def test_group_window_and_pause_in_the_limiter(redis_client: object) -> None:
    limiter = TelegramRateLimiter(
        redis_client,  # type: ignore[arg-type]
        TelegramLimits(global_per_second=100, per_chat_interval=0, group_per_minute=3,
                       group_window=1.0, margin=0),
    )  # fmt: skip
    assert [limiter.acquire(GROUP) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire(GROUP)
    assert 0.5 < wait <= 1.0  # the fourth message in the group waits for the window
    assert limiter.acquire(1001) == 0.0  # a private chat is not held by the group's window
    limiter.pause(2)
    assert 1.5 < limiter.acquire(1001) <= 2.0  # a 429 elsewhere holds everyone
    limiter.pause(0.5)  # a shorter pause never shortens a longer one
    assert limiter.paused_for() > 1.5


async def test_scripted_429_is_honoured_by_every_worker(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    fake_botapi.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    first, second = make_context(bot=bot), make_context(bot=bot)
    started = time.monotonic()
    one = asyncio.create_task(process(first, _job(1001)))
    async with asyncio.timeout(30):  # the 429 has arrived and set the global pause
        while first.limiter.paused_for() == 0:  # noqa: ASYNC110 - state in Redis, no event
            await asyncio.sleep(0.01)
    two = asyncio.create_task(process(second, _job(1002)))
    outcomes = await asyncio.gather(one, two)
    elapsed = time.monotonic() - started
    assert [o.status for o in outcomes] == [oc.SENT, oc.SENT]
    assert elapsed >= 1.9  # the other worker waited out retry_after too
    assert len(fake_botapi.calls("sendMessage")) == 3 and len(fake_botapi.sent) == 2


async def test_403_deactivates_the_target(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    fake_botapi.blocked_chats = {1001}
    context = make_context(bot=bot, schedule=Scheduled())
    with capture_logs() as logs:
        outcome = await process(context, _job(1001))
    assert outcome.status == oc.DISABLED
    record = context.ledger.disabled("tg:1001")
    assert record is not None and record["reason"] == "forbidden"
    assert "blocked" in record["detail"]
    assert (await process(context, _job(1001, 2))).status == oc.DISABLED
    assert len(fake_botapi.calls("sendMessage")) == 1  # stopped: no further request
    assert context.ledger.dead_letters() == []
    assert TOKEN not in json.dumps(logs, default=str) + json.dumps(record)


async def test_chat_not_found_is_recorded_and_not_retried(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    fake_botapi.known_chats = {1001}
    scheduled = Scheduled()
    context = make_context(bot=bot, schedule=scheduled)
    outcome = await process(context, _job(777))
    assert outcome.status == oc.DEAD
    problem = context.ledger.problem("tg:777")
    assert problem is not None and problem["reason"] == "chat_not_found"
    assert scheduled.jobs == []
    [dead] = context.ledger.dead_letters()
    assert dead["reason"].startswith("chat_not_found")


async def test_server_error_is_retried(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    fake_botapi.fail_next("sendMessage", 502, "Bad Gateway")
    scheduled = Scheduled()
    context = make_context(bot=bot, schedule=scheduled, telegram_schedule=(0.05,))
    assert (await process(context, _job(1001))).status == oc.RETRY
    assert [job.attempt for job, _ in scheduled.jobs] == [1]
    assert [o.status for o in await scheduled.run_all(context)] == [oc.SENT]
    assert len(fake_botapi.sent) == 1


async def test_the_same_alert_is_never_sent_twice(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    scheduled = Scheduled()
    context = make_context(bot=bot, schedule=scheduled, lease_seconds=1)
    job = _job(1001)
    # Two copies at once (a redelivered job racing the original): one sends, one waits.
    outcomes = await asyncio.gather(process(context, job), process(context, job))
    assert sorted(o.status for o in outcomes) == [oc.IN_FLIGHT, oc.SENT]
    assert [o.status for o in await scheduled.run_all(context)] == [oc.ALREADY_SENT]
    again = await process(context, job)
    assert again.status == oc.ALREADY_SENT
    assert again.message_id == fake_botapi.sent[0]["message_id"]
    assert len(fake_botapi.sent) == 1
    assert context.ledger.sent(job.key) == str(fake_botapi.sent[0]["message_id"])


async def test_digest_holds_then_flushes_one_message(
    fake_botapi: FakeBotAPI, bot: Bot, make_context: ContextFactory
) -> None:
    context = make_context(bot=bot, schedule=Scheduled())
    noon = datetime(2024, 5, 1, 12, 7, tzinfo=UTC)
    jobs = [_job(1001, index, digest="1h") for index in range(3)]
    for job in jobs:
        outcome = await process(context, job, now=noon)
        assert outcome.status == oc.HELD and "13:00" in outcome.detail
    await process(context, jobs[0], now=noon)  # held twice, listed once
    assert fake_botapi.sent == [] and context.digests.held("tg:1001") == 3
    assert context.digests.due(now=noon.timestamp()) == []
    assert context.digests.due(now=datetime(2024, 5, 1, 13, 0, 1, tzinfo=UTC).timestamp()) == [
        "tg:1001"
    ]
    outcome = await digest.flush(context, jobs[0].target)  # type: ignore[arg-type]
    assert outcome.status == oc.SENT
    [sent] = fake_botapi.sent
    assert sent["visible"].startswith("🗞 Digest: 3 alerts")
    assert context.digests.held("tg:1001") == 0
    # Every alert of the digest now counts as sent to that chat.
    for job in jobs:
        assert (await process(context, job, now=noon)).status == oc.ALREADY_SENT
    assert len(fake_botapi.sent) == 1
