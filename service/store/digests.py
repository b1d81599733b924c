"""Alerts held for a digest or until quiet hours end, per Telegram target (``delivery:held:*``,
``delivery:flushing:*``, ``delivery:held:due``).

``plan_delivery`` (service.core.schedule) decides an alert waits; ``DigestStore.hold`` keeps it
in the target's held hash (one entry per alert id, so a redelivered alert is held once) and
records when the target is due. A worker's maintenance tick enqueues a flush job for every due
target; the flush moves the held hash aside (``flushing``), sends one message (a lone alert as
the usual alert message, several as a digest) under an idempotency key made of the alert ids,
then marks every alert sent to that target. A flush killed midway leaves the moved hash to the
next run (a flush job whose worker died is recovered like any job).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import redis

from service import constants
from service.core.delivery import DeliveryJob

HELD_PREFIX = constants.DELIVERY_KEY_PREFIX + "held:"
FLUSHING_PREFIX = constants.DELIVERY_KEY_PREFIX + "flushing:"
DUE_KEY = constants.DELIVERY_KEY_PREFIX + "held:due"

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
