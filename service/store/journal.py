"""Leases on running delivery jobs (the ``delivery:leases`` and ``delivery:leased`` keys), so a
worker killed mid-delivery loses nothing.

A job writes its payload and a lease (now + lease seconds) before it sends and removes them
once the outcome is settled (sent, retry scheduled, dead-lettered). If the worker dies, the
lease runs out and ``take_expired`` (run by every worker at start and on each maintenance tick)
hands the payload back to be enqueued again. The ledger's claim and sent markers make the
second run idempotent. This is our own recovery rather than RQ's abandoned-job handling, which
waits for a job's heartbeat to expire (a minute or more) and only on RQ's ten-minute cycle.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from service import constants

LEASES_KEY = constants.DELIVERY_KEY_PREFIX + "leases"
PAYLOADS_KEY = constants.DELIVERY_KEY_PREFIX + "leased"

# Take expired leases (pushing each forward by a lease, so one recoverer wins) and return
# member, payload pairs. A recoverer that dies before enqueueing leaves them to expire again.
_TAKE_EXPIRED = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, member in ipairs(expired) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
  table.insert(out, member)
  table.insert(out, redis.call('HGET', KEYS[2], member) or '')
end
return out
"""


class Journal:
    def __init__(self, connection: redis.Redis, lease_seconds: float) -> None:
        self.redis = connection
        self.lease_seconds = lease_seconds
        self._take = connection.register_script(_TAKE_EXPIRED)

    def begin(self, key: str, function: str, payload: dict[str, Any], description: str) -> None:
        """Hold a lease on ``key`` while the job runs; the payload is what recovery enqueues."""
        record = {"function": function, "payload": payload, "description": description}
        with self.redis.pipeline() as pipe:
            pipe.hset(PAYLOADS_KEY, key, json.dumps(record, ensure_ascii=False))
            pipe.zadd(LEASES_KEY, {key: time.time() + self.lease_seconds})
            pipe.execute()

    def end(self, key: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.zrem(LEASES_KEY, key)
            pipe.hdel(PAYLOADS_KEY, key)
            pipe.execute()

    def held(self) -> int:
        return int(self.redis.zcard(LEASES_KEY))

    def take_expired(
        self, *, now: float | None = None, batch: int = constants.DELIVERY_RECOVERY_BATCH
    ) -> list[tuple[str, dict[str, Any]]]:
        """Take every lease that ran out (pushing it a lease ahead, so one recoverer wins) and
        return its key and record (``function``, ``payload``, ``description``) to enqueue."""
        current = time.time() if now is None else now
        items = self._take(
            keys=[LEASES_KEY, PAYLOADS_KEY],
            args=[current, current + self.lease_seconds, batch],
        )
        taken: list[tuple[str, dict[str, Any]]] = []
        for member, raw in zip(items[::2], items[1::2], strict=True):
            key = member.decode() if isinstance(member, bytes) else str(member)
            if not raw:
                self.end(key)
                continue
            taken.append((key, json.loads(raw)))
        return taken
