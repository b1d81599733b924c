"""RQ entry points of delivery, kept thin: decode the JSON payload, take the context, call on."""

from __future__ import annotations

from typing import Any

import structlog

from service.deliveries import DeliveryJob, TelegramTarget, parse_target
from workers.delivery import digest, dispatch
from workers.delivery.context import DeliveryContext, get_context

log = structlog.get_logger(__name__)


def deliver(payload: dict[str, Any]) -> str:
    """Deliver one alert to one target (``DeliveryJob.to_dict`` form); returns the outcome.

    A payload that does not decode is dead-lettered as it is (it cannot be retried into shape).
    """
    context = get_context()
    try:
        job = DeliveryJob.from_dict(payload)
    except (KeyError, ValueError, TypeError) as exc:
        log.error("delivery_payload_invalid", error=type(exc).__name__)
        context.ledger.dead_letter(payload, f"invalid payload: {type(exc).__name__}")
        return "invalid"
    return context.run(dispatch.process(context, job)).status


def flush_digest(payload: dict[str, Any]) -> str:
    """Flush the held alerts of one Telegram target (``{"target": ..., "attempt": n}``)."""
    context = get_context()
    target = parse_target(payload["target"])
    if not isinstance(target, TelegramTarget):
        raise ValueError("digests are flushed to telegram targets only")
    key = f"digest:{target.key}"
    context.journal.begin(key, digest.FLUSH_FUNCTION, payload, f"flush digest of {target.key}")
    outcome = context.run(digest.flush(context, target, int(payload.get("attempt", 0))))
    context.journal.end(key)
    return outcome.status


def run_maintenance(context: DeliveryContext | None = None) -> dict[str, int]:
    """Recover deliveries of dead workers and enqueue due digest flushes (a worker's tick)."""
    ctx = context or get_context()
    recovered = ctx.journal.recover(ctx.queue)
    flushes = digest.enqueue_due_flushes(ctx)
    if recovered or flushes:
        log.info("delivery_maintenance", recovered=recovered, flushes=flushes)
    return {"recovered": recovered, "flushes": flushes}
