"""One delivery from start to settled: lease, hold or send, then act on the outcome.

``process`` is what the RQ job runs: it takes a lease in the journal (so a crash is
recovered), holds the alert when the subscriber's digest or quiet hours say so, sends it through
the target's sender and settles the outcome: a retry is scheduled per the target's schedule with
jitter, a permanent failure or the last failed attempt goes to the dead-letter list. It never
raises for a delivery problem: an unexpected error is treated as a failed attempt.
"""

from __future__ import annotations

import contextlib
import random
import time
from datetime import UTC, datetime

import structlog

from service.core.schedule import plan_delivery
from service.deliveries import JOB_FUNCTION, DeliveryJob, TelegramTarget
from workers.delivery import outcome as oc
from workers.delivery.context import DeliveryContext
from workers.delivery.outcome import Outcome

log = structlog.get_logger(__name__)

# A job that found its delivery claimed elsewhere looks again when the claim ends (plus this
# grace), or after IN_FLIGHT_RECHECK_SECONDS at most: the claimant usually finishes in well
# under a second, and the re-check then finds the sent marker.
IN_FLIGHT_GRACE_SECONDS = 1.0
IN_FLIGHT_RECHECK_SECONDS = 5.0


async def process(context: DeliveryContext, job: DeliveryJob, *,
                  now: datetime | None = None) -> Outcome:  # fmt: skip
    """Deliver ``job`` once and settle the outcome; returns it."""
    context.journal.begin(job.key, JOB_FUNCTION, job.to_dict(), job.description)
    started = time.perf_counter()
    try:
        outcome = await _deliver(context, job, now or datetime.now(UTC))
    except Exception as exc:  # any bug or outage is one failed attempt, retried
        log.exception("delivery_error", key=job.key, error=type(exc).__name__)
        outcome = Outcome(oc.RETRY, f"internal error: {type(exc).__name__}")
    _count(context, job, outcome, time.perf_counter() - started)
    settle(context, job, outcome)
    # Only a settled delivery gives its lease up: if settling failed, recovery runs it again.
    context.journal.end(job.key)
    return outcome


async def _deliver(context: DeliveryContext, job: DeliveryJob, now: datetime) -> Outcome:
    target = job.target
    if isinstance(target, TelegramTarget):
        if not job.held and not job.force and target.prefs.holds:
            if context.ledger.sent(job.key) is not None:
                return Outcome(oc.ALREADY_SENT)
            plan = plan_delivery(target.prefs, now)
            if plan.hold_until is not None:
                context.digests.hold(job, plan.hold_until)
                return Outcome(oc.HELD, f"{plan.reason} until {plan.hold_until.isoformat()}")
        return await context.telegram.send(job)
    return await context.webhooks.send(job)


def _count(context: DeliveryContext, job: DeliveryJob, outcome: Outcome, seconds: float) -> None:
    """Deliveries by target kind and outcome, their latency, and post-to-delivery latency."""
    metrics = context.metrics
    if metrics is None:
        return
    kind = "telegram" if isinstance(job.target, TelegramTarget) else "webhook"
    status = outcome.status
    if status == oc.RETRY and retry_delay(_schedule(context, job)[0], job.attempt, 0) is None:
        status = oc.DEAD  # the schedule is used up: settle() dead-letters it
    metrics.delivery(kind, status, seconds=seconds)
    if outcome.status == oc.SENT:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            metrics.delivered(datetime.fromisoformat(job.alert.post["date"]))
    if status == oc.DEAD and kind == "webhook":
        metrics.webhook_dead_lettered()


def _schedule(context: DeliveryContext, job: DeliveryJob) -> tuple[tuple[float, ...], float]:
    if isinstance(job.target, TelegramTarget):
        return context.settings.telegram_schedule, 0.2
    return context.settings.webhook_schedule, context.settings.webhook_jitter


def retry_delay(schedule: tuple[float, ...], attempt: int, jitter: float) -> float | None:
    """The delay before the attempt after ``attempt``, spread by up to ``jitter`` (a fraction);
    None when the schedule is used up."""
    if attempt >= len(schedule):
        return None
    base = schedule[attempt]
    return base * (1.0 + random.uniform(0.0, jitter))


def settle(context: DeliveryContext, job: DeliveryJob, outcome: Outcome) -> None:
    """Act on an outcome: schedule the retry or the re-check, or dead-letter the delivery."""
    fields = {"key": job.key, "target": job.target.label, "attempt": job.attempt,
              "status": outcome.status}  # fmt: skip
    if outcome.status in (oc.SENT, oc.ALREADY_SENT, oc.DISABLED, oc.HELD):
        log.info("delivery_settled", **fields)
        return
    if outcome.status == oc.IN_FLIGHT:
        delay = min(outcome.retry_in + IN_FLIGHT_GRACE_SECONDS, IN_FLIGHT_RECHECK_SECONDS)
        context.enqueue(job, delay)
        log.info("delivery_in_flight", retry_in=delay, **fields)
        return
    if outcome.status == oc.DEFERRED:
        context.enqueue(job, outcome.retry_in)
        log.info("delivery_deferred", retry_in=outcome.retry_in, **fields)
        return
    if outcome.status == oc.RETRY:
        schedule, jitter = _schedule(context, job)
        planned = retry_delay(schedule, job.attempt, jitter)
        if planned is not None:
            wait = max(planned, outcome.retry_in)
            context.enqueue(job.next_attempt(), wait)
            log.info("delivery_retry_scheduled", delay=round(wait, 3), detail=outcome.detail,
                     **fields)  # fmt: skip
            return
    context.ledger.dead_letter(job, outcome.detail or outcome.status)
    log.warning("delivery_dead_lettered", detail=outcome.detail, **fields)
