"""Delivery state in Redis: who was sent what, who is sending, what failed for good, and each
webhook endpoint's log of attempts. This module owns every ``delivery:`` and ``target:`` key.

- a **claim** (``claim:<alert>:<target>``, short TTL) marks a send in flight, so two copies of a
  job never send at once; it expires by itself if the worker dies mid-send;
- a **sent marker** (``sent:<alert>:<target>`` = Telegram message id, or ``1``) makes every
  later delivery of the same alert to the same target a no-op;
- **dead letters**: deliveries that ran out of retries or failed for good, kept for redelivery
  (``delivery:dead``, every one, for the operator; and ``delivery:dead:<owner>``, the same
  entries per owner, so a tenant reads and redelivers only its own without a scan); their
  webhook secrets sealed when a key is set (``service.core.secretbox``);
- **disabled targets** (403, webhook 410) and **problems** (chat not found) per target;
- the **delivery log** of a webhook endpoint: its latest attempts (capped). An endpoint is a
  (owner, URL) pair (``WebhookTarget.endpoint_id``), so the log and the disabled state of one
  tenant's URL are never another's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from service import constants
from service.core.delivery import DeliveryJob, WebhookTarget
from service.core.secretbox import SecretBox, installed
from service.redis import text
from service.store.workers import ALIVE_PREFIX

SENT_PREFIX = constants.DELIVERY_KEY_PREFIX + "sent:"
CLAIM_PREFIX = constants.DELIVERY_KEY_PREFIX + "claim:"
LOG_PREFIX = constants.DELIVERY_KEY_PREFIX + "log:"

# Returns {0} when claimed, {1, value} when already sent, {2, pttl} when another claim holds it.
# A claim is held by a worker (its lease); a claim whose worker is no longer alive (ARGV[5] is
# the prefix of the workers' alive keys) is taken over at once: that send will never finish.
_CLAIM = """
if ARGV[3] ~= '1' then
  local sent = redis.call('GET', KEYS[1])
  if sent then return {1, sent} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ''} end
local holder = redis.call('GET', KEYS[2])
if holder and string.sub(holder, 1, 1) == '@' and ARGV[4] == '1' then
  if redis.call('EXISTS', ARGV[5] .. string.sub(holder, 2)) == 0 then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
    return {0, 'taken over'}
  end
end
return {2, tostring(redis.call('PTTL', KEYS[2]))}
"""


@dataclass(frozen=True, slots=True)
class Claim:
    state: str  # "claimed" | "sent" | "busy"
    value: str = ""
    ttl: float = 0.0

    @property
    def message_id(self) -> int | None:
        return int(self.value) if self.state == "sent" and self.value.isdigit() else None


class Ledger:
    """``owner`` is the lease of the worker process that claims (``service.store.workers``):
    its claims are taken over once it is no longer alive."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        owner: str | None = None,
        sent_ttl: int = constants.DELIVERY_SENT_TTL_SECONDS,
        box: SecretBox | None = None,
    ) -> None:
        self.redis = connection
        self.owner = owner
        self.sent_ttl = sent_ttl
        self.box = box  # seals the webhook secrets of dead letters (None: the process's box)
        self._claim = connection.register_script(_CLAIM)

    # --- idempotency -------------------------------------------------------------------------
    def claim(self, key: str, ttl: float, *, force: bool = False) -> Claim:
        """Claim ``key`` for sending unless it was sent (``force`` ignores the sent marker)."""
        token = f"@{self.owner}" if self.owner else f"{time.time():.6f}"
        code, value = self._claim(
            keys=[SENT_PREFIX + key, CLAIM_PREFIX + key],
            args=[token, max(int(ttl * 1000), 1), "1" if force else "0",
                  "1" if self.owner else "0", ALIVE_PREFIX],
        )  # fmt: skip
        text = value.decode() if isinstance(value, bytes) else str(value)
        if code == 0:
            return Claim("claimed")
        if code == 1:
            return Claim("sent", text)
        return Claim("busy", ttl=max(int(text), 0) / 1000)

    def mark_sent(self, key: str, message_id: int | None = None) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(SENT_PREFIX + key, str(message_id or 1), ex=self.sent_ttl)
            pipe.delete(CLAIM_PREFIX + key)
            pipe.execute()

    def release(self, key: str) -> None:
        self.redis.delete(CLAIM_PREFIX + key)

    def sent(self, key: str) -> str | None:
        value = self.redis.get(SENT_PREFIX + key)
        return None if value is None else text(value)

    # --- targets -----------------------------------------------------------------------------
    def disable_target(self, target_key: str, reason: str, detail: str = "") -> None:
        """Stop deliveries to a target (blocked bot, kicked, endpoint gone)."""
        self.redis.hset(
            constants.TARGET_DISABLED_PREFIX + target_key,
            mapping={"reason": reason, "detail": detail[:500], "at": _now_iso()},
        )

    def disabled(self, target_key: str) -> dict[str, str] | None:
        data = self.redis.hgetall(constants.TARGET_DISABLED_PREFIX + target_key)
        return {text(k): text(v) for k, v in data.items()} or None

    def enable_target(self, target_key: str) -> bool:
        return bool(self.redis.delete(constants.TARGET_DISABLED_PREFIX + target_key))

    def record_problem(self, target_key: str, reason: str, detail: str = "") -> None:
        """Remember the last permanent error of a target (chat not found...) and count them."""
        key = constants.TARGET_PROBLEM_PREFIX + target_key
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"reason": reason, "detail": detail[:500], "at": _now_iso()})
            pipe.hincrby(key, "count", 1)
            pipe.execute()

    def problem(self, target_key: str) -> dict[str, str] | None:
        data = self.redis.hgetall(constants.TARGET_PROBLEM_PREFIX + target_key)
        return {text(k): text(v) for k, v in data.items()} or None

    # --- dead letters ------------------------------------------------------------------------
    def dead_letter(self, job: DeliveryJob | dict[str, Any], reason: str) -> None:
        payload = job.to_dict() if isinstance(job, DeliveryJob) else job
        if isinstance(payload, dict) and "target" in payload:  # a job queued before the key
            box = self.box if self.box is not None else installed()
            payload = {**payload, "target": box.seal_target(payload["target"])}
        key = job.key if isinstance(job, DeliveryJob) else None
        entry = {"key": key, "at": _now_iso(), "reason": reason[:500], "job": payload}
        raw = json.dumps(entry, ensure_ascii=False)
        owner = _owner_of(payload)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(constants.DELIVERY_DEAD_KEY, raw)
            if owner is not None:
                pipe.rpush(_dead_key(owner), raw)
            pipe.execute()

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first (``job`` holds the delivery with its target)."""
        raw = self.redis.lrange(constants.DELIVERY_DEAD_KEY, 0, -1)
        return [json.loads(item) for item in raw]

    def take_dead_letter(self, raw: str) -> bool:
        """Remove one dead letter (from the operator's list and its owner's)."""
        owner = _owner_of((_loads(raw) or {}).get("job"))
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(constants.DELIVERY_DEAD_KEY, 1, raw)
            if owner is not None:
                pipe.lrem(_dead_key(owner), 1, raw)
            removed = pipe.execute()
        return bool(removed[0])

    def dead_letter_count(self, owner: str | None = None) -> int:
        key = constants.DELIVERY_DEAD_KEY if owner is None else _dead_key(owner)
        return int(self.redis.llen(key))

    def raw_dead_letters(self, owner: str | None = None, limit: int | None = None) -> list[str]:
        """Dead letters as stored, oldest first: every one, or ``owner``'s; at most ``limit``."""
        key = constants.DELIVERY_DEAD_KEY if owner is None else _dead_key(owner)
        end = -1 if limit is None else limit - 1
        return [text(item) for item in self.redis.lrange(key, 0, end)]

    # --- delivery log ------------------------------------------------------------------------
    def log_attempt(self, target: WebhookTarget, entry: dict[str, Any], keep: int) -> None:
        """Add one attempt to the endpoint's log, keeping the newest ``keep``."""
        key = LOG_PREFIX + target.endpoint_id
        with self.redis.pipeline() as pipe:
            pipe.lpush(key, json.dumps(entry, ensure_ascii=False))
            pipe.ltrim(key, 0, keep - 1)
            pipe.execute()

    def attempts(self, target: WebhookTarget, limit: int = 100) -> list[dict[str, Any]]:
        """The endpoint's latest attempts, newest first."""
        raw = self.redis.lrange(LOG_PREFIX + target.endpoint_id, 0, limit - 1)
        return [json.loads(item) for item in raw]


def _dead_key(owner: str) -> str:
    return f"{constants.DELIVERY_DEAD_KEY}:{owner}"


def _loads(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _owner_of(payload: object) -> str | None:
    """The owner of a delivery job payload (its target's), if any."""
    target = payload.get("target") if isinstance(payload, dict) else None
    owner = target.get("owner") if isinstance(target, dict) else None
    return owner if isinstance(owner, str) else None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
