"""The deliveries queue: one RQ job per (alert, target), retries and recovered jobs, redelivery.

Everything that puts delivery work on Redis goes through ``enqueue``: a first delivery (the post
stage), a scheduled retry or re-check (the dispatcher), a digest flush, a job recovered from a
dead worker's lease, an operator's redelivery. So every delivery job has the same timeout, TTLs
and description (RQ's default description would quote the payload, which holds webhook secrets),
and every payload's webhook secrets are sealed when a key is set (``job_payload``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import redis
import structlog
from redis.client import Pipeline
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from service import constants
from service.core.delivery import DeliveryJob, parse_target
from service.core.model import Alert
from service.core.secretbox import SecretBox, installed
from service.store.deliveries import Ledger

log = structlog.get_logger(__name__)

# RQ entry points (workers/jobs.py), by name: RQ imports them in the worker.
DELIVER = "workers.jobs.deliver"
FLUSH_DIGEST = "workers.jobs.flush_digest"


def deliveries_queue(connection: redis.Redis) -> Queue:
    """The deliveries queue, with the JSON serializer every tgwatch queue uses."""
    return Queue(constants.DELIVERIES_QUEUE, connection=connection, serializer=JSONSerializer)


def enqueue(
    queue: Queue,
    function: str,
    payload: dict[str, Any],
    description: str,
    delay: float = 0.0,
    *,
    pipeline: Pipeline | None = None,
) -> Job:
    """Put one delivery-side job on ``queue``, now or after ``delay`` seconds (RQ's scheduler);
    in ``pipeline`` (the caller's MULTI/EXEC transaction) when given."""
    options: dict[str, Any] = {
        "job_timeout": constants.DELIVERY_JOB_TIMEOUT_SECONDS,
        "result_ttl": constants.JOB_RESULT_TTL_SECONDS,
        "failure_ttl": constants.JOB_FAILURE_TTL_SECONDS,
        "description": description,
    }
    if pipeline is not None:
        options["pipeline"] = pipeline
    if delay > 0:
        return queue.enqueue_in(timedelta(seconds=delay), function, payload, **options)
    return queue.enqueue(function, payload, **options)


def job_payload(job: DeliveryJob, box: SecretBox | None = None) -> dict[str, Any]:
    """A delivery's RQ payload, its webhook secrets sealed (``box``, else the process's): a
    target read from a record stored before the key was set is sealed on its way to the queue."""
    payload = job.to_dict()
    payload["target"] = (box if box is not None else installed()).seal_target(payload["target"])
    return payload


def enqueue_job(
    queue: Queue,
    job: DeliveryJob,
    delay: float = 0.0,
    pipeline: Pipeline | None = None,
    *,
    box: SecretBox | None = None,
) -> Job:
    """Put one delivery on ``queue``, now or after ``delay`` seconds."""
    payload = job_payload(job, box)
    return enqueue(queue, DELIVER, payload, job.description, delay, pipeline=pipeline)


def enqueue_deliveries(
    queue: Queue,
    alert: Alert,
    targets: list[dict[str, Any]],
    *,
    subscription_name: str | None = None,
    pipeline: Pipeline | None = None,
) -> int:
    """Enqueue one delivery job per target of ``alert``; returns how many were enqueued (in
    ``pipeline``, the post stage's transaction, when given).

    A suppressed alert (edit of an alerted post, duplicate text) is not delivered. A malformed
    target is logged and skipped so the other targets still get the alert.
    """
    if alert.suppressed is not None:
        return 0
    count = 0
    for raw in targets:
        try:
            target = parse_target(raw)
        except ValueError as exc:
            log.warning("delivery_target_invalid", alert_id=alert.id, reason=str(exc))
            continue
        enqueue_job(queue, DeliveryJob(alert, target, 0, subscription_name), pipeline=pipeline)
        count += 1
    return count


def redeliver(
    ledger: Ledger,
    queue: Queue,
    alert_id: str | None = None,
    *,
    owner: str | None = None,
    limit: int | None = None,
) -> int:
    """Enqueue dead letters again — of ``alert_id`` (all when None), of ``owner`` only when
    given (read from that owner's own list), at most ``limit`` — with the same alert id
    (webhook-id); returns how many.

    A redelivered job starts a fresh retry schedule (attempt 0) and skips digest planning. It is
    enqueued before its dead letter is removed, so a crash in between can only enqueue it twice,
    which the ledger's sent marker makes harmless.
    """
    count = 0
    for raw in ledger.raw_dead_letters(owner):
        if limit is not None and count >= limit:
            break
        entry = json.loads(raw)
        payload = entry.get("job") or {}
        alert = payload.get("alert") or {}
        if alert_id is not None and alert.get("id") != alert_id:
            continue
        try:
            job = DeliveryJob.from_dict({**payload, "attempt": 0, "held": True})
        except (KeyError, ValueError, TypeError):
            log.warning("dead_letter_unreadable", key=entry.get("key"))
            continue
        enqueue_job(queue, job)
        ledger.take_dead_letter(raw)
        count += 1
    log.info("dead_letters_redelivered", count=count, alert_id=alert_id)
    return count
