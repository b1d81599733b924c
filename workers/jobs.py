"""RQ entry points, kept thin: decode the JSON payload, take the process context, call the stage.

``process_posts`` runs the post stage on a batch; ``deliver`` one delivery; ``flush_digest`` a
target's held alerts; ``run_maintenance`` is the worker's tick (recover deliveries of dead
workers, enqueue due digest flushes). Job ids and post keys are bound to the log context, so
every event a job logs says which job and which post it was about.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from rq import get_current_job

from service.core.delivery import DeliveryJob, TelegramTarget, parse_target
from service.core.formats.result import Rejected
from service.core.post import Post
from service.queue import QUEUED_AT
from service.store.rejected import record_rejected
from workers import pipeline
from workers.context import current
from workers.delivery import digest, dispatch
from workers.delivery.context import DeliveryContext

log = structlog.get_logger(__name__)


def _bind_job() -> None:
    job = get_current_job()
    structlog.contextvars.clear_contextvars()
    if job is not None:
        structlog.contextvars.bind_contextvars(job_id=job.id)


def process_posts(payload: list[dict[str, Any]]) -> dict[str, int]:
    """Process a batch of posts (``Post.to_dict`` form).

    An item that does not decode is set aside (``tgwatch rejected``) and the rest go through;
    an error in the stage itself fails the job, which RQ retries and then keeps in its failed
    registry with the traceback.
    """
    _bind_job()
    context = current()
    stage = context.post_stage()
    started = time.perf_counter()
    posts: list[Post] = []
    queued_at: list[float | None] = []  # when the listener handed each post to the queue
    for index, item in enumerate(payload):
        try:
            posts.append(Post.from_dict(item))
            at = item.get(QUEUED_AT)
            queued_at.append(float(at) if isinstance(at, int | float) else None)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            reason = f"bad post in job payload: {type(exc).__name__}: {exc}"
            record_rejected(context.redis, Rejected("job", index, reason, repr(item)[:2000]),
                            stage="job")  # fmt: skip
            log.warning("job_item_rejected", index=index, reason=reason)
    if payload:
        stage.metrics.observe_stage("parse", (time.perf_counter() - started) / len(payload))
    report = pipeline.process_posts(stage, posts, queued_at)
    return {"received": report.received, "stored": report.stored, "alerts": report.alerts}


def deliver(payload: dict[str, Any]) -> str:
    """Deliver one alert to one target (``DeliveryJob.to_dict`` form); returns the outcome.

    A payload that does not decode is dead-lettered as it is (it cannot be retried into shape).
    """
    _bind_job()
    context = current().delivery
    try:
        job = DeliveryJob.from_dict(payload)
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        log.error("delivery_payload_invalid", error=type(exc).__name__)
        context.ledger.dead_letter(payload, f"invalid payload: {type(exc).__name__}")
        return "invalid"
    structlog.contextvars.bind_contextvars(
        delivery=job.key, alert_id=job.alert.id, post=job.alert.post_key
    )
    return str(context.run(dispatch.process(context, job)).status)


def flush_digest(payload: dict[str, Any]) -> str:
    """Flush the held alerts of one Telegram target (``{"target": ..., "attempt": n}``)."""
    _bind_job()
    context = current().delivery
    target = parse_target(payload["target"])
    if not isinstance(target, TelegramTarget):
        raise ValueError("digests are flushed to telegram targets only")
    structlog.contextvars.bind_contextvars(delivery=f"digest:{target.key}")
    outcome = context.run(digest.flush(context, target, int(payload.get("attempt", 0))))
    return str(outcome.status)


def run_maintenance(context: DeliveryContext) -> dict[str, int]:
    """The delivery chores of a worker's tick: enqueue due digest flushes."""
    flushes = digest.enqueue_due_flushes(context)
    if flushes:
        log.info("digest_flushes_enqueued", flushes=flushes)
    return {"flushes": flushes}
