"""Leases in Redis for the MTProto source: which process runs an account, which account reads a
channel. The one owner of the ``mtproto:`` lease keys.

Layout (every key under ``MTPROTO_PREFIX``):
- ``account-lease:<name>``   STRING  token of the process running the account (TTL: a lease)
- ``lease:<entry>``          STRING  ``<account> <token>`` reading the channel (TTL: a lease);
  ``~preview`` as the account means the channel is polled from its preview (a fallback lease,
  which any account with room may take over)
- ``held:<account>``         ZSET    entry → lease expiry (ms): the account's channels are the
  members not yet expired, counted where read, so nothing needs sweeping

Every lease script reads Redis's clock (TIME), so hosts with skewed clocks agree on expiry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import redis
import redis.asyncio as aioredis

from service import constants
from service.redis import text

MTPROTO_PREFIX = constants.KEY_PREFIX + "mtproto:"
# The pseudo-account of fallback leases: channels polled from their preview page.
FALLBACK_ACCOUNT = "~preview"

_ACQUIRE_CHANNEL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  if current and not (ARGV[5] == '1' and string.sub(current, 1, 1) == '~') then return 0 end
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
return 1
"""

# KEYS: held, then one lease key per entry; ARGV: holder, ttl, then the entries. A lease that ran
# out with nobody taking it is taken again (the channel was read all along); one held by another
# holder is lost. Returns the lost entries.
_RENEW_CHANNELS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local lost = {}
for i = 2, #KEYS do
  local entry = ARGV[i + 1]
  local current = redis.call('GET', KEYS[i])
  if current == ARGV[1] or not current then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ttl)
    redis.call('ZADD', KEYS[1], now + ttl, entry)
  else
    redis.call('ZREM', KEYS[1], entry)
    table.insert(lost, entry)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return lost
"""

_RELEASE_CHANNEL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# Every lease an account holds, whichever process took it (an account found banned): ARGV are the
# lease key prefix and the account.
_RELEASE_ACCOUNT = """
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
local released = 0
for _, entry in ipairs(entries) do
  local key = ARGV[1] .. entry
  local current = redis.call('GET', key)
  if current and string.sub(current, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then
    redis.call('DEL', key)
    released = released + 1
  end
end
redis.call('DEL', KEYS[1])
return released
"""

_ACQUIRE_ACCOUNT = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE_ACCOUNT_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def account_lease_key(name: str) -> str:
    return f"{MTPROTO_PREFIX}account-lease:{name}"


def lease_key(entry: str) -> str:
    return f"{MTPROTO_PREFIX}lease:{entry}"


def held_key(account: str) -> str:
    return f"{MTPROTO_PREFIX}held:{account}"


def holder_of(value: object) -> str | None:
    """The account in a lease value (``<account> <token>``)."""
    return None if value is None else text(value).split(" ", 1)[0]


class LeaseStore:
    """Async access to the leases (see the module docstring for the layout)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._acquire_channel = client.register_script(_ACQUIRE_CHANNEL)
        self._renew_channels = client.register_script(_RENEW_CHANNELS)
        self._release_channel = client.register_script(_RELEASE_CHANNEL)
        self._release_account = client.register_script(_RELEASE_ACCOUNT)
        self._acquire_account = client.register_script(_ACQUIRE_ACCOUNT)
        self._release_account_lease = client.register_script(_RELEASE_ACCOUNT_LEASE)

    async def release_all(self, account: str) -> int:
        """Every channel lease of ``account``, whichever process took it; returns how many."""
        return int(await self._release_account(
            keys=[held_key(account)], args=[lease_key(""), account]
        ))  # fmt: skip

    async def acquire_account(self, name: str, token: str, ttl: float) -> bool:
        """Take (or keep) the right to run an account; one process at a time runs it."""
        ok = await self._acquire_account(
            keys=[account_lease_key(name)], args=[token, int(ttl * 1000)]
        )
        return bool(ok)

    async def release_account(self, name: str, token: str) -> None:
        await self._release_account_lease(keys=[account_lease_key(name)], args=[token])

    async def running(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` some process runs now (holds the account lease of)."""
        ordered = list(names)
        if not ordered:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for name in ordered:
            pipe.exists(account_lease_key(name))
        return {name for name, found in zip(ordered, await pipe.execute(), strict=True) if found}

    # --- channel leases ------------------------------------------------------------------------
    async def acquire_channel(
        self, entry: str, account: str, token: str, ttl: float, cap: int, *, preempt: bool = True
    ) -> int:
        """1: leased to ``account``; 0: someone else reads it; -1: the account is full.

        With ``preempt``, a fallback lease (the preview polls it) is taken over.
        """
        result = await self._acquire_channel(
            keys=[lease_key(entry), held_key(account)],
            args=[f"{account} {token}", int(ttl * 1000), cap, entry, "1" if preempt else "0"],
        )
        return int(result)

    async def renew_channels(
        self, account: str, token: str, ttl: float, entries: Iterable[str]
    ) -> set[str]:
        """Renew an account's leases; returns the entries another holder has taken."""
        ordered = list(entries)
        if not ordered:
            return set()
        lost = await self._renew_channels(
            keys=[held_key(account), *(lease_key(entry) for entry in ordered)],
            args=[f"{account} {token}", int(ttl * 1000), *ordered],
        )
        return {text(entry) for entry in lost}

    async def release_channel(self, entry: str, account: str, token: str) -> None:
        await self._release_channel(
            keys=[lease_key(entry), held_key(account)], args=[f"{account} {token}", entry]
        )

    async def holders(self, entries: Sequence[str]) -> dict[str, str | None]:
        """The account reading each entry now (``~preview`` for a fallback), or None."""
        if not entries:
            return {}
        values = await self.client.mget([lease_key(entry) for entry in entries])
        return {entry: holder_of(value) for entry, value in zip(entries, values, strict=True)}

    async def owned(self, entries: Sequence[str], account: str, token: str) -> set[str]:
        """Which of ``entries`` this holder's leases still cover (checked right before posts are
        handed over, so a reader whose lease lapsed in a stall stops at once)."""
        if not entries:
            return set()
        holder = f"{account} {token}"
        values = await self.client.mget([lease_key(entry) for entry in entries])
        return {
            e for e, value in zip(entries, values, strict=True) if value and text(value) == holder
        }

    async def held_counts(self, accounts: Iterable[str]) -> dict[str, int]:
        """Live leases per account (expired ones are not counted)."""
        ordered = list(accounts)
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for account in ordered:
            pipe.zcount(held_key(account), now_ms, "+inf")
        return {a: int(n) for a, n in zip(ordered, await pipe.execute(), strict=True)}


def release_all(client: redis.Redis, account: str) -> int:
    """``LeaseStore.release_all`` through a synchronous client (`tgwatch accounts remove`)."""
    script = client.register_script(_RELEASE_ACCOUNT)
    return int(script(keys=[held_key(account)], args=[lease_key(""), account]))
