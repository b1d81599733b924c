"""One delivery from start to settled: lease, hold or send, then act on the outcome.

``process`` is what the RQ job runs (a worker that dies running it leaves the job in its holding
list, from which it is recovered: see workers/worker.py): it holds the alert when the
subscriber's digest or quiet hours say so, sends it through
the target's sender and settles the outcome: a retry is scheduled per the target's retry policy,
a permanent failure or the last failed attempt goes to the dead-letter list. It never raises for
a delivery problem: an unexpected error is treated as a failed attempt.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import structlog

from service.core.delivery import DeliveryJob, DeliveryStatus, Outcome, TelegramTarget
from service.core.schedule import plan_delivery
from workers.delivery.context import DeliveryContext

log = structlog.get_logger(__name__)

# A job that found its delivery claimed elsewhere looks again when the claim ends (plus this
# grace), or after IN_FLIGHT_RECHECK_SECONDS at most: the claimant usually finishes in well
# under a second, and the re-check then finds the sent marker.
IN_FLIGHT_GRACE_SECONDS = 1.0
IN_FLIGHT_RECHECK_SECONDS = 5.0

NO_BOT = Outcome(DeliveryStatus.RETRY, "no bot token configured")


async def process(context: DeliveryContext, job: DeliveryJob, *,
                  now: datetime | None = None) -> Outcome:  # fmt: skip
    """Deliver ``job`` once and settle the outcome; returns it."""
    started = time.perf_counter()
    try:
        outcome = await _deliver(context, job, now or datetime.now(UTC))
    except Exception as exc:  # any bug or outage is one failed attempt, retried
        log.exception("delivery_error", error=type(exc).__name__)
        outcome = Outcome(DeliveryStatus.RETRY, f"internal error: {type(exc).__name__}")
    settled = settle(context, job, outcome)
    context.metrics.delivery(job.target.kind, settled, seconds=time.perf_counter() - started)
    if outcome.status == DeliveryStatus.SENT:
        context.metrics.delivered(job.alert)
    return outcome


async def _deliver(context: DeliveryContext, job: DeliveryJob, now: datetime) -> Outcome:
    target = job.target
    if not isinstance(target, TelegramTarget):
        return await context.webhooks.send(job)
    if not job.held and not job.force and target.prefs.holds:
        if context.ledger.sent(job.key) is not None:
            return Outcome(DeliveryStatus.ALREADY_SENT)
        plan = plan_delivery(target.prefs, now)
        if plan.hold_until is not None:
            context.digests.hold(job, plan.hold_until)
            return Outcome(
                DeliveryStatus.HELD, f"{plan.reason} until {plan.hold_until.isoformat()}"
            )
    if context.telegram is None:
        return NO_BOT
    return await context.telegram.send(job)


def retry_in(
    context: DeliveryContext, target: object, attempt: int, outcome: Outcome
) -> float | None:
    """When to try again after ``outcome`` at ``attempt``, or None to dead-letter."""
    if outcome.status == DeliveryStatus.IN_FLIGHT:
        return min(outcome.retry_in + IN_FLIGHT_GRACE_SECONDS, IN_FLIGHT_RECHECK_SECONDS)
    if outcome.status == DeliveryStatus.DEFERRED:
        return outcome.retry_in
    if outcome.status == DeliveryStatus.RETRY:
        return context.policy(target).delay(attempt, at_least=outcome.retry_in)
    return None


def settle(context: DeliveryContext, job: DeliveryJob, outcome: Outcome) -> DeliveryStatus:
    """Act on an outcome: schedule the retry or the re-check, or dead-letter the delivery.
    Returns what was done: the outcome's status, or DEAD when it was dead-lettered."""
    fields = {"key": job.key, "target": job.target.label, "attempt": job.attempt,
              "status": str(outcome.status)}  # fmt: skip
    if outcome.done:
        log.info("delivery_settled", **fields)
        return outcome.status
    try:
        delay = retry_in(context, job.target, job.attempt, outcome)
    except (ArithmeticError, ValueError, TypeError) as exc:
        # A retry that cannot be scheduled would fail the job without a trace of the delivery:
        # it is dead-lettered instead, where it can be seen and redelivered.
        log.warning("delivery_retry_unschedulable", error=type(exc).__name__, **fields)
        outcome = Outcome(outcome.status, "retry schedule could not be computed")
        delay = None
    if delay is not None and not math.isfinite(delay):
        outcome, delay = Outcome(outcome.status, "retry schedule could not be computed"), None
    if delay is not None:
        again = job.next_attempt() if outcome.status == DeliveryStatus.RETRY else job
        context.enqueue(again, delay)
        log.info("delivery_retry_scheduled", delay=round(delay, 3), detail=outcome.detail,
                 **fields)  # fmt: skip
        return outcome.status
    context.ledger.dead_letter(job, outcome.detail or str(outcome.status))
    log.warning("delivery_dead_lettered", detail=outcome.detail, **fields)
    return DeliveryStatus.DEAD
