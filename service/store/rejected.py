"""Set-aside input: malformed items kept (capped) for `tgwatch rejected` and redis-cli."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from service import constants
from service.core.formats.result import Rejected

REJECTED_KEY = constants.KEY_PREFIX + "rejected"


def record_rejected(connection: redis.Redis, rejected: Rejected, *, stage: str = "parse") -> None:
    """Keep a malformed item (newest first, capped at REJECTS_MAX)."""
    entry = {**rejected.to_dict(), "stage": stage, "at": time.time()}
    pipe = connection.pipeline()
    pipe.lpush(REJECTED_KEY, json.dumps(entry, ensure_ascii=False))
    pipe.ltrim(REJECTED_KEY, 0, constants.REJECTS_MAX - 1)
    pipe.execute()


def list_rejected(connection: redis.Redis, limit: int = 20) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in connection.lrange(REJECTED_KEY, 0, limit - 1)]


def count_rejected(connection: redis.Redis) -> int:
    return int(connection.llen(REJECTED_KEY))
