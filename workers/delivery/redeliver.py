"""Redeliver dead letters: one alert's, or all of them, with the same alert id (webhook-id).

A redelivered job starts a fresh retry schedule (attempt 0) and skips digest planning. It is
enqueued before its dead letter is removed, so a crash in between can only enqueue it twice,
which the ledger's sent marker makes harmless.
"""

from __future__ import annotations

import json

import structlog
from rq import Queue

from service.deliveries import DeliveryJob, enqueue_job
from workers.delivery.ledger import Ledger

log = structlog.get_logger(__name__)


def redeliver(ledger: Ledger, queue: Queue, alert_id: str | None = None) -> int:
    """Enqueue the dead letters of ``alert_id`` (all when None) again; returns how many."""
    count = 0
    for raw in ledger.raw_dead_letters():
        entry = json.loads(raw)
        payload = entry.get("job") or {}
        if alert_id is not None and (payload.get("alert") or {}).get("id") != alert_id:
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
