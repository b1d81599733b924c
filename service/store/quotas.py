"""Request budgets per caller, in Redis so every API process and bot shares them: a fixed
one-minute window per (budget, caller) — an API key's id, a chat — counted with one INCR."""

from __future__ import annotations

import time

import redis

from service import constants

WINDOW_SECONDS = 60


class RequestBudget:
    """At most ``per_minute`` calls of ``name`` per caller in each clock minute."""

    def __init__(self, client: redis.Redis, name: str, per_minute: int) -> None:
        self.client = client
        self.name = name
        self.per_minute = per_minute

    def take(self, caller: str, now: float | None = None) -> float | None:
        """Count one call: None when it may go ahead, else the seconds until it may."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        key = f"{constants.RATE_PREFIX}{self.name}:{caller}:{window}"
        with self.client.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS * 2)
            count, _ = pipe.execute()
        if int(count) <= self.per_minute:
            return None
        return (window + 1) * WINDOW_SECONDS - now
