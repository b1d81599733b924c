"""`tgwatch status` reads and never writes (issue 10: RQ's counting cleaned up as it read,
showing phantom failures and dropping the evidence)."""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service import constants
from service.core.delivery import DeliveryJob, parse_target
from service.status import collect_status, render_status
from service.store.deliveries import Ledger
from service.store.workers import WorkerLeases
from tests.delivery.conftest import make_alert


def _snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


def test_status_changes_nothing_and_shows_what_waits(redis_client: redis.Redis) -> None:
    queue = Queue(constants.POSTS_QUEUE, connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("workers.jobs.process_posts", [])
    # What a worker killed mid-job leaves: its job started long ago, in its holding list, and a
    # registration whose key expired.
    leases = WorkerLeases(redis_client)
    leases.take("gone", [queue.key])
    redis_client.zadd(StartedJobRegistry(queue=queue).key, {f"{job.id}:exec1": time.time() - 900})
    redis_client.hset(job.key, "status", "started")
    redis_client.sadd("rq:workers", "rq:worker:ghost")
    dead = DeliveryJob(make_alert(), parse_target({"telegram": 1}))
    Ledger(redis_client).dead_letter(dead, "chat not found")
    before = _snapshot(redis_client)

    report = collect_status(redis_client)

    assert _snapshot(redis_client) == before
    posts = next(q for q in report["queues"] if q["name"] == constants.POSTS_QUEUE)
    assert posts["started"] == 1 and posts["failed"] == 0  # no phantom failure
    assert report["jobs_held"]["awaiting_recovery"] == 1
    assert report["jobs_held"]["dead_workers"] == ["gone"]
    assert report["dead_letters"]["count"] == 1
    text = render_status(report)
    assert "Dead letters: 1" in text and "held by dead workers" in text
