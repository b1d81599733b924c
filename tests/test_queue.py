"""The posts queue batches adaptively: a lone post goes at once, a flood fills batches, and a
post waits at most ``batch_wait``; each post carries when it was handed to the queue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import redis
from rq import Queue

from service.core.post import Post
from service.queue import QUEUED_AT, Enqueuer


def post(number: int) -> Post:
    return Post(channel="chan", message_id=number, date=datetime(2024, 9, 25, tzinfo=UTC),
                text=f"post {number}", source="test")  # fmt: skip


def batches(queue: Queue) -> list[list[dict]]:  # type: ignore[type-arg]
    return [job.args[0] for job in queue.get_jobs()]


async def test_a_lone_post_goes_at_once(redis_client: redis.Redis) -> None:
    enqueuer = Enqueuer(redis_client, batch_size=100, batch_wait=30.0)
    before = time.time()
    assert await enqueuer.put(post(1))
    # On the queue when put returns: no wait for company (batch_wait is 30 s here).
    [[item]] = batches(enqueuer.queue)
    assert item["message_id"] == 1
    assert before <= item[QUEUED_AT] <= time.time()
    await enqueuer.close()


async def test_posts_close_behind_a_batch_wait_for_the_next_one(redis_client: redis.Redis) -> None:
    enqueuer = Enqueuer(redis_client, batch_size=100, batch_wait=30.0)
    await enqueuer.put(post(1))
    await enqueuer.put(post(2))
    await enqueuer.put(post(3))
    assert [len(batch) for batch in batches(enqueuer.queue)] == [1]  # 2 and 3 wait together
    await enqueuer.close()  # ... at most batch_wait, or until shutdown
    assert [len(batch) for batch in batches(enqueuer.queue)] == [1, 2]


async def test_the_waiting_batch_goes_after_batch_wait(redis_client: redis.Redis) -> None:
    enqueuer = Enqueuer(redis_client, batch_size=100, batch_wait=0.2)
    await enqueuer.put(post(1))
    await enqueuer.put(post(2))
    deadline = time.monotonic() + 10
    while len(enqueuer.queue) < 2:
        assert time.monotonic() < deadline, "the second batch never went"
        await asyncio.sleep(0.02)
    assert [len(batch) for batch in batches(enqueuer.queue)] == [1, 1]
    await enqueuer.close()


async def test_a_flood_fills_batches(redis_client: redis.Redis) -> None:
    enqueuer = Enqueuer(redis_client, batch_size=10, batch_wait=30.0)
    for number in range(41):
        await enqueuer.put(post(number))
    # The first post went alone; the rest went as soon as each batch of 10 was full.
    assert [len(batch) for batch in batches(enqueuer.queue)] == [1, 10, 10, 10, 10]
    await enqueuer.close()
    assert enqueuer.stats.enqueued == 41
