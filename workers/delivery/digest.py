"""Digests and quiet hours: alerts held per Telegram target, flushed as one message.

``plan_delivery`` (service.core.schedule) decides an alert waits; ``DigestStore.hold`` keeps it
in the target's held hash (one entry per alert id, so a redelivered alert is held once) and
records when the target is due. A worker's maintenance tick enqueues a flush job for every due
target; the flush moves the held hash aside (``flushing``), sends one message (a lone alert as
the usual alert message, several as a digest) under an idempotency key made of the alert ids,
then marks every alert sent to that target. A flush killed midway leaves the moved hash to the
next run, which the journal's lease starts.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
import structlog

from service import constants
from service.core.model import Alert
from service.core.render import render_digest, render_telegram
from service.deliveries import DeliveryJob, TelegramTarget
from workers.delivery import outcome as oc
from workers.delivery.outcome import Outcome

if TYPE_CHECKING:
    from workers.delivery.context import DeliveryContext

log = structlog.get_logger(__name__)

HELD_PREFIX = constants.DELIVERY_KEY_PREFIX + "held:"
FLUSHING_PREFIX = constants.DELIVERY_KEY_PREFIX + "flushing:"
DUE_KEY = constants.DELIVERY_KEY_PREFIX + "held:due"
FLUSH_FUNCTION = "workers.delivery.jobs.flush_digest"

# Move the held alerts aside for a flush (unless a crashed flush left some there) and drop the
# target from the due set, so alerts held from now on wait for their own window.
_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('HVALS', KEYS[2])
"""

# Due targets, pushed a lease ahead so only one tick enqueues their flush.
_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


class DigestStore:
    def __init__(self, connection: redis.Redis, lease_seconds: float) -> None:
        self.redis = connection
        self.lease_seconds = lease_seconds
        self._take = connection.register_script(_TAKE)
        self._due = connection.register_script(_DUE)

    def hold(self, job: DeliveryJob, until: datetime) -> None:
        """Keep ``job``'s alert for its target's next flush at ``until``."""
        key = job.target.key
        entry = {"alert": job.alert.to_dict(), "subscription_name": job.subscription_name}
        with self.redis.pipeline() as pipe:
            pipe.hset(HELD_PREFIX + key, job.alert.id, json.dumps(entry, ensure_ascii=False))
            pipe.zadd(DUE_KEY, {key: until.timestamp()}, nx=True)
            pipe.execute()

    def held(self, target_key: str) -> int:
        return int(self.redis.hlen(HELD_PREFIX + target_key))

    def due(self, now: float | None = None) -> list[str]:
        current = time.time() if now is None else now
        members = self._due(keys=[DUE_KEY], args=[current, current + self.lease_seconds])
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def take(self, target_key: str) -> list[dict[str, Any]]:
        raw = self._take(
            keys=[HELD_PREFIX + target_key, FLUSHING_PREFIX + target_key, DUE_KEY],
            args=[target_key],
        )
        return [json.loads(item) for item in raw]

    def done(self, target_key: str) -> None:
        self.redis.delete(FLUSHING_PREFIX + target_key)


def flush_payload(target: TelegramTarget, attempt: int = 0) -> dict[str, Any]:
    return {"target": target.to_dict(), "attempt": attempt}


def enqueue_due_flushes(context: DeliveryContext, now: float | None = None) -> int:
    """Enqueue a flush job for every target whose window has ended."""
    count = 0
    for target_key in context.digests.due(now):
        chat = target_key.removeprefix("tg:")
        if not chat.lstrip("-").isdigit():
            continue
        context.queue.enqueue(
            FLUSH_FUNCTION,
            flush_payload(TelegramTarget(int(chat))),
            job_timeout=constants.DELIVERY_JOB_TIMEOUT_SECONDS,
            result_ttl=constants.JOB_RESULT_TTL_SECONDS,
            failure_ttl=constants.JOB_FAILURE_TTL_SECONDS,
            description=f"flush digest of {target_key}",
        )
        count += 1
    return count


async def flush(context: DeliveryContext, target: TelegramTarget, attempt: int = 0) -> Outcome:
    """Send the target's held alerts as one message and settle what became of them."""
    entries = context.digests.take(target.key)
    if not entries:
        return Outcome(oc.SENT, "nothing held")
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
    outcome = await context.telegram.send_message(key, target, message)
    jobs = [DeliveryJob(alert, target, 0, name, held=True) for alert, name in items]
    if outcome.status in (oc.SENT, oc.ALREADY_SENT):
        for job in jobs:
            context.ledger.mark_sent(job.key, outcome.message_id)
        context.digests.done(target.key)
        log.info("digest_sent", chat_id=target.chat_id, alerts=len(items))
    elif outcome.status == oc.DISABLED:
        context.digests.done(target.key)
    elif outcome.status in (oc.RETRY, oc.DEFERRED, oc.IN_FLIGHT):
        schedule = context.settings.telegram_schedule
        next_attempt = attempt + (1 if outcome.status == oc.RETRY else 0)
        if next_attempt > len(schedule):
            _dead(context, target, jobs, outcome.detail)
        else:
            delay = outcome.retry_in
            if outcome.status == oc.RETRY:
                delay = max(delay, schedule[attempt] * random.uniform(1.0, 1.2))
            context.queue.enqueue_in(
                timedelta(seconds=max(delay, 0.0)),
                FLUSH_FUNCTION,
                flush_payload(target, next_attempt),
                job_timeout=constants.DELIVERY_JOB_TIMEOUT_SECONDS,
                description=f"flush digest of {target.key}",
            )
    else:
        _dead(context, target, jobs, outcome.detail)
    return outcome


def _dead(context: DeliveryContext, target: TelegramTarget, jobs: list[DeliveryJob],
          reason: str) -> None:  # fmt: skip
    for job in jobs:
        context.ledger.dead_letter(job, reason)
    context.digests.done(target.key)
    log.warning("digest_dead_lettered", chat_id=target.chat_id, alerts=len(jobs), reason=reason)
