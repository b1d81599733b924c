"""Digest flushes: a Telegram target's held alerts sent as one message when its window ends.

A worker's maintenance tick enqueues a flush job for every due target (``enqueue_due_flushes``);
the flush takes the held alerts (``service.store.digests``), sends one message (a lone alert as
the usual alert message, several as a digest) under an idempotency key made of the alert ids,
then marks every alert sent to that target. Its failures are retried on the same policy as any
Telegram delivery (``DeliveryContext.policy``), through the same queue path.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import structlog

from service.core.delivery import DeliveryJob, DeliveryStatus, Outcome, TelegramTarget
from service.core.model import Alert
from service.core.render import render_digest, render_telegram
from service.delivery_queue import FLUSH_DIGEST
from workers.delivery.context import DeliveryContext
from workers.delivery.dispatch import NO_BOT, retry_in

log = structlog.get_logger(__name__)


def flush_payload(target: TelegramTarget, attempt: int = 0) -> dict[str, Any]:
    return {"target": target.to_dict(), "attempt": attempt}


def flush_description(target: TelegramTarget) -> str:
    return f"flush digest of {target.key}"


def enqueue_due_flushes(context: DeliveryContext, now: float | None = None) -> int:
    """Enqueue a flush job for every target whose window has ended."""
    count = 0
    for target_key in context.digests.due(now):
        chat = target_key.removeprefix("tg:")
        if not chat.lstrip("-").isdigit():
            continue
        target = TelegramTarget(int(chat))
        context.enqueue_call(FLUSH_DIGEST, flush_payload(target), flush_description(target))
        count += 1
    return count


async def flush(context: DeliveryContext, target: TelegramTarget, attempt: int = 0) -> Outcome:
    """Send the target's held alerts as one message and settle what became of them."""
    started = time.perf_counter()
    entries = context.digests.take(target.key)
    if not entries:
        return Outcome(DeliveryStatus.SENT, "nothing held")
    items = sorted(
        ((Alert.from_dict(e["alert"]), e.get("subscription_name")) for e in entries),
        key=lambda item: (item[0].matched_at, item[0].id),
    )
    if len(items) == 1:
        message = render_telegram(items[0][0], subscription_name=items[0][1])
    else:
        message = render_digest(items)
    ids = "\n".join(sorted(alert.id for alert, _ in items))
    key = f"digest:{hashlib.sha256(ids.encode()).hexdigest()[:24]}:{target.key}"
    outcome = NO_BOT
    if context.telegram is not None:
        outcome = await context.telegram.send_message(key, target, message)
    jobs = [DeliveryJob(alert, target, 0, name, held=True) for alert, name in items]
    settled = _settle(context, target, attempt, jobs, outcome)
    context.metrics.delivery(target.kind, settled, seconds=time.perf_counter() - started)
    return outcome


def _settle(
    context: DeliveryContext,
    target: TelegramTarget,
    attempt: int,
    jobs: list[DeliveryJob],
    outcome: Outcome,
) -> DeliveryStatus:
    if outcome.status in (DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT):
        for job in jobs:
            context.ledger.mark_sent(job.key, outcome.message_id)
            context.metrics.delivered(job.alert)
        context.digests.done(target.key)
        log.info("digest_sent", chat_id=target.chat_id, alerts=len(jobs))
        return outcome.status
    if outcome.status == DeliveryStatus.DISABLED:
        context.digests.done(target.key)
        return outcome.status
    delay = retry_in(context, target, attempt, outcome)
    if delay is not None:
        next_attempt = attempt + (1 if outcome.status == DeliveryStatus.RETRY else 0)
        context.enqueue_call(
            FLUSH_DIGEST, flush_payload(target, next_attempt), flush_description(target), delay
        )
        log.info("digest_retry_scheduled", chat_id=target.chat_id, delay=round(delay, 3),
                 detail=outcome.detail)  # fmt: skip
        return outcome.status
    for job in jobs:
        context.ledger.dead_letter(job, outcome.detail or str(outcome.status))
    context.digests.done(target.key)
    log.warning("digest_dead_lettered", chat_id=target.chat_id, alerts=len(jobs),
                detail=outcome.detail)  # fmt: skip
    return DeliveryStatus.DEAD
