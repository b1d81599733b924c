"""MTProto accounts in Redis: their state and health, what they resolved, what they could not
read, and the channels' pace. The one owner of the ``mtproto:`` keys other than the leases
(``store.leases``), whose store ``AccountStore`` extends so the pool holds one object.

Layout (every key under ``MTPROTO_PREFIX``):
- ``accounts``               SET     registered account names (`tgwatch accounts add`)
- ``account:<name>``         HASH    state, reason, state_at, added_at, user_id, display, connected,
  connected_at, last_update, flood_until, flood_seconds, flood_operation, last_error
- ``resolved:<account>``     HASH    entry → ChannelRef JSON (access hashes are per account), so a
  restart does not resolve usernames again
- ``refused:<entry>``        HASH    account → {"reason", "at"}: accounts that could not read it
- ``fallback``               HASH    entry → {"reason", "at", "polled"}: channels no account reads
- ``activity:<channel>``     HASH    last_post, interval, samples: the channel's usual pace
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from service.redis import text
from service.store.leases import (
    MTPROTO_PREFIX,
    LeaseStore,
    account_lease_key,
    held_key,
    holder_of,
    lease_key,
    release_all,
)

ACCOUNTS_KEY = MTPROTO_PREFIX + "accounts"
FALLBACK_KEY = MTPROTO_PREFIX + "fallback"
# An account that could not read a channel is not asked again for this long: a private channel
# stays private for a while, yet an invite or an unban is noticed within hours.
REFUSAL_TTL_SECONDS = 6 * 3600
# Weight of the newest gap in a channel's usual interval between posts (an EWMA): about the last
# 20 posts count, so a channel's pace follows weeks, not a single burst.
ACTIVITY_ALPHA = 0.1

STATE_ACTIVE = "active"


def account_key(name: str) -> str:
    return f"{MTPROTO_PREFIX}account:{name}"


def resolved_key(account: str) -> str:
    return f"{MTPROTO_PREFIX}resolved:{account}"


def refused_key(entry: str) -> str:
    return f"{MTPROTO_PREFIX}refused:{entry}"


def activity_key(channel: str) -> str:
    return f"{MTPROTO_PREFIX}activity:{channel.lower()}"


def next_interval(interval: float | None, gap: float) -> float:
    """A channel's usual interval between posts after one more gap of ``gap`` seconds."""
    if interval is None:
        return gap
    return (1 - ACTIVITY_ALPHA) * interval + ACTIVITY_ALPHA * gap


def _float(value: object) -> float | None:
    return None if value in (None, b"", "") else float(text(value))


@dataclass(frozen=True)
class AccountRecord:
    """One account as `tgwatch accounts list`, `tgwatch status` and the pool see it."""

    name: str
    state: str = STATE_ACTIVE
    reason: str | None = None
    state_at: float | None = None
    added_at: float | None = None
    user_id: int | None = None
    display: str | None = None
    connected: bool = False
    connected_at: float | None = None
    last_update: float | None = None
    flood_until: float | None = None
    flood_seconds: float | None = None
    flood_operation: str | None = None
    last_error: str | None = None
    running: bool = False  # a process holds its account lease
    channels: int = 0  # channels it holds a live lease on

    @property
    def usable(self) -> bool:
        return self.state == STATE_ACTIVE

    def flood_left(self, now: float) -> float:
        return max(0.0, (self.flood_until or 0.0) - now)

    @classmethod
    def from_mapping(
        cls, name: str, raw: Mapping[Any, Any], *, running: bool = False, channels: int = 0
    ) -> AccountRecord:
        data = {text(key): text(value) for key, value in raw.items()}
        user_id = data.get("user_id")
        return cls(
            name=name,
            state=data.get("state", STATE_ACTIVE),
            reason=data.get("reason") or None,
            state_at=_float(data.get("state_at")),
            added_at=_float(data.get("added_at")),
            user_id=int(user_id) if user_id else None,
            display=data.get("display") or None,
            connected=data.get("connected") == "1",
            connected_at=_float(data.get("connected_at")),
            last_update=_float(data.get("last_update")),
            flood_until=_float(data.get("flood_until")),
            flood_seconds=_float(data.get("flood_seconds")),
            flood_operation=data.get("flood_operation") or None,
            last_error=data.get("last_error") or None,
            running=running,
            channels=channels,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode_json_hash(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    return {text(key): json.loads(text(value)) for key, value in raw.items()}


class AccountStore(LeaseStore):
    """Async access for the pool: accounts, resolved channels, refusals, fallbacks and channel
    pace here, the leases from ``LeaseStore`` (see the module docstrings for the layouts)."""

    @classmethod
    def from_url(cls, url: str) -> AccountStore:
        return cls(aioredis.Redis.from_url(url))

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- accounts ------------------------------------------------------------------------------
    async def names(self) -> list[str]:
        return sorted(text(name) for name in await self.client.smembers(ACCOUNTS_KEY))

    async def register(self, name: str) -> None:
        """List an account (a session found on disk counts even if it was added elsewhere)."""
        await self.client.sadd(ACCOUNTS_KEY, name)

    async def account(self, name: str) -> AccountRecord:
        raw = await self.client.hgetall(account_key(name))
        return AccountRecord.from_mapping(name, raw)

    async def update(self, name: str, **fields: object) -> None:
        """Set fields of an account's record (None deletes the field)."""
        present = {k: ("1" if v is True else "0" if v is False else v) for k, v in fields.items()}
        mapping = {k: v for k, v in present.items() if v is not None}
        gone = [k for k, v in present.items() if v is None]
        pipe = self.client.pipeline(transaction=True)
        if mapping:
            pipe.hset(account_key(name), mapping=mapping)  # type: ignore[arg-type]
        if gone:
            pipe.hdel(account_key(name), *gone)
        await pipe.execute()

    async def mark_unusable(self, name: str, state: str, reason: str) -> int:
        """The account is banned, deactivated or logged out: record it and free its channels at
        once (not after their leases run out). Returns the channels freed."""
        await self.update(name, state=state, reason=reason, state_at=time.time(), connected=False)
        return await self.release_all(name)

    # --- resolved channels, refusals, fallbacks ------------------------------------------------
    async def cached_ref(self, account: str, entry: str) -> dict[str, Any] | None:
        """What ``account`` resolved ``entry`` to (a ChannelRef's dict form), if it did."""
        raw = await self.client.hget(resolved_key(account), entry)
        return None if raw is None else dict(json.loads(text(raw)))

    async def cache_ref(self, account: str, entry: str, ref: Mapping[str, Any]) -> None:
        await self.client.hset(resolved_key(account), entry, json.dumps(dict(ref)))

    async def refuse(self, entry: str, account: str, reason: str) -> None:
        payload = json.dumps({"reason": reason, "at": time.time()})
        await self.client.hset(refused_key(entry), account, payload)

    async def refusals(self, entry: str) -> dict[str, str]:
        """Accounts that could not read ``entry`` recently, with their reason."""
        raw = _decode_json_hash(await self.client.hgetall(refused_key(entry)))
        horizon = time.time() - REFUSAL_TTL_SECONDS
        return {account: str(v["reason"]) for account, v in raw.items() if v["at"] >= horizon}

    async def set_fallback(self, entry: str, reason: str, *, polled: bool) -> None:
        payload = json.dumps({"reason": reason, "at": time.time(), "polled": polled})
        await self.client.hset(FALLBACK_KEY, entry, payload)

    async def clear_fallback(self, entries: Iterable[str]) -> None:
        ordered = list(entries)
        if ordered:
            await self.client.hdel(FALLBACK_KEY, *ordered)

    async def fallbacks(self) -> dict[str, dict[str, Any]]:
        return _decode_json_hash(await self.client.hgetall(FALLBACK_KEY))

    # --- channel activity ----------------------------------------------------------------------
    async def activity(self, channel: str) -> tuple[float | None, float | None, int]:
        """(last post date, usual interval between posts, gaps measured) of a channel."""
        last, interval, samples = await self.client.hmget(
            activity_key(channel), ["last_post", "interval", "samples"]
        )
        return _float(last), _float(interval), int(text(samples)) if samples else 0

    async def record_posts(
        self, channel: str, dates: Iterable[float]
    ) -> tuple[float | None, float | None, int]:
        """Note new posts' dates, each gap counted (only the reader of a channel writes here);
        returns the updated activity."""
        last, interval, samples = await self.activity(channel)
        changed = False
        for date in sorted(dates):
            if last is not None and date <= last:
                continue
            if last is not None:
                interval, samples = next_interval(interval, date - last), samples + 1
            last, changed = date, True
        if changed:
            mapping: dict[str, float | int] = {"last_post": last or 0.0, "samples": samples}
            if interval is not None:
                mapping["interval"] = interval
            await self.client.hset(activity_key(channel), mapping=mapping)  # type: ignore[arg-type]
        return last, interval, samples


# --- synchronous reads and admin for the CLI and `tgwatch status` ---------------------------------
def list_accounts(client: redis.Redis) -> list[AccountRecord]:
    """Every registered account with whether it runs and how many channels it holds."""
    names = sorted(text(name) for name in client.smembers(ACCOUNTS_KEY))
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(account_key(name))
        pipe.exists(account_lease_key(name))
        pipe.zcount(held_key(name), now_ms, "+inf")
    results = pipe.execute()
    records = []
    for i, name in enumerate(names):
        raw, running, channels = results[3 * i : 3 * i + 3]
        records.append(AccountRecord.from_mapping(name, raw, running=bool(running),
                                                  channels=int(channels)))  # fmt: skip
    return records


def channel_sources(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Per watched entry this source knows: the account reading it, or why the preview does."""
    report: dict[str, dict[str, Any]] = {}
    for entry, info in _decode_json_hash(client.hgetall(FALLBACK_KEY)).items():
        report[entry] = {"fallback": info.get("reason"), "polled": bool(info.get("polled"))}
    keys = [text(key) for key in client.scan_iter(match=lease_key("*"), count=1000)]
    if keys:
        for key, value in zip(keys, client.mget(keys), strict=True):
            account = holder_of(value)
            if account is not None:
                entry = key.removeprefix(lease_key(""))
                report.setdefault(entry, {})["account"] = account
    return report


def register_account(client: redis.Redis, name: str, user_id: int, display: str) -> None:
    """A freshly logged-in account: active, whatever it was marked before."""
    pipe = client.pipeline(transaction=True)
    pipe.sadd(ACCOUNTS_KEY, name)
    pipe.hdel(account_key(name), "reason", "flood_until", "flood_seconds", "flood_operation",
              "last_error")  # fmt: skip
    pipe.hset(account_key(name), mapping={
        "state": STATE_ACTIVE, "state_at": time.time(), "added_at": time.time(),
        "user_id": user_id, "display": display,
    })  # fmt: skip
    pipe.delete(resolved_key(name))
    pipe.execute()


def remove_account(client: redis.Redis, name: str) -> int:
    """Forget an account and free its channels now; returns the channels freed."""
    released = release_all(client, name)
    pipe = client.pipeline(transaction=True)
    pipe.srem(ACCOUNTS_KEY, name)
    pipe.delete(account_key(name), resolved_key(name), account_lease_key(name))
    pipe.execute()
    return released
