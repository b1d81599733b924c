"""Worker liveness and the jobs each worker holds, so a job taken by a worker that dies is found
and handed back within seconds (``worker:*`` keys).

- ``worker:alive:<lease>`` — a key with a short TTL that a live worker process refreshes from a
  thread of its own (so a long job never lets it lapse); its absence means the process is gone.
- ``worker:holding:<lease>`` — a list of the RQ job ids the worker has taken and not finished:
  jobs move there from their queue in the same command that takes them (LMOVE), and leave it
  once RQ has recorded what became of them. A job is always in a queue, a holding list, or done.
- ``workers:holding`` — a set of the leases that may hold jobs, so recovery needs no SCAN.

``dead_holders`` lists leases whose alive key expired; ``take_held`` moves one such holding list
into the recoverer's own (so a recoverer that dies mid-way leaves the jobs to the next one) and
returns the job ids to enqueue again.
"""

from __future__ import annotations

from typing import Any

import redis

from service import constants
from service.redis import text

ALIVE_PREFIX = constants.KEY_PREFIX + "worker:alive:"
HOLDING_PREFIX = constants.KEY_PREFIX + "worker:holding:"
HOLDERS_KEY = constants.KEY_PREFIX + "workers:holding"
RECOVERING_PREFIX = constants.KEY_PREFIX + "worker:recovering:"

# Take the first job of the first non-empty queue into the holding list: KEYS are the queues in
# priority order, then the holding list, then the holders set; returns {queue key, job id}.
_TAKE = """
local holding, holders = KEYS[#KEYS - 1], KEYS[#KEYS]
for i = 1, #KEYS - 2 do
  local job = redis.call('LMOVE', KEYS[i], holding, 'LEFT', 'RIGHT')
  if job then
    redis.call('SADD', holders, ARGV[1])
    return {KEYS[i], job}
  end
end
return nil
"""

# Move a dead worker's holding list into the recoverer's (only if the dead worker's alive key
# is still absent): returns the ids moved.
_TAKE_HELD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do redis.call('RPUSH', KEYS[4], id) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return ids
"""


def alive_key(lease: str) -> str:
    return ALIVE_PREFIX + lease


def holding_key(lease: str) -> str:
    return HOLDING_PREFIX + lease


class WorkerLeases:
    """Liveness and holding lists of worker processes, on one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._take = client.register_script(_TAKE)
        self._take_held = client.register_script(_TAKE_HELD)

    def heartbeat(self, lease: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` seconds more (and that it may hold jobs)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(alive_key(lease), "1", px=max(int(ttl * 1000), 1))
            pipe.sadd(HOLDERS_KEY, lease)
            pipe.execute()

    def alive(self, lease: str) -> bool:
        return bool(self.client.exists(alive_key(lease)))

    def take(self, lease: str, queue_keys: list[str]) -> tuple[str, str] | None:
        """Move the first job of the first non-empty queue into ``lease``'s holding list;
        returns (queue key, job id), or None when every queue is empty."""
        found = self._take(keys=[*queue_keys, holding_key(lease), HOLDERS_KEY], args=[lease])
        if not found:
            return None
        return text(found[0]), text(found[1])

    def wait_take(self, lease: str, queue_key: str, timeout: float) -> str | None:
        """Block up to ``timeout`` seconds for a job of one queue, into the holding list (the
        worker's heartbeat has put its lease among the holders already)."""
        # redis-py annotates the timeout as an int; Redis takes fractions of a second.
        wait: Any = timeout
        found = self.client.blmove(queue_key, holding_key(lease), wait, "LEFT", "RIGHT")
        return None if found is None else text(found)

    def release(self, lease: str, job_id: str) -> None:
        """The job is finished (RQ recorded its outcome): it leaves the holding list."""
        self.client.lrem(holding_key(lease), 1, job_id)

    def held(self, lease: str) -> list[str]:
        return [text(item) for item in self.client.lrange(holding_key(lease), 0, -1)]

    def holders(self) -> list[str]:
        return sorted(text(member) for member in self.client.smembers(HOLDERS_KEY))

    def dead_holders(self) -> list[str]:
        """Leases that may hold jobs but whose worker stopped saying it is alive."""
        leases = self.holders()
        if not leases:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for lease in leases:
                pipe.exists(alive_key(lease))
            alive = pipe.execute()
        return [lease for lease, up in zip(leases, alive, strict=True) if not up]

    def lock_recovery(self, lease: str, owner: str, ttl: float) -> bool:
        """One recoverer per dead worker at a time."""
        key = RECOVERING_PREFIX + lease
        return bool(self.client.set(key, owner, nx=True, px=max(int(ttl * 1000), 1)))

    def take_held(self, lease: str, recoverer: str) -> list[str]:
        """Move a dead worker's holding list into ``recoverer``'s (nothing if the dead one came
        back); returns the job ids, which the recoverer enqueues and then ``release``s."""
        keys = [alive_key(lease), holding_key(lease), HOLDERS_KEY, holding_key(recoverer)]
        return [text(item) for item in self._take_held(keys=keys, args=[lease])]

    def forget(self, lease: str) -> None:
        """A worker that stopped cleanly holds nothing and needs no recovery."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(alive_key(lease), holding_key(lease))
            pipe.srem(HOLDERS_KEY, lease)
            pipe.execute()
