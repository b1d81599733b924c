"""Telegram's send limits, shared by every worker through Redis with one atomic Lua script.

Three sliding windows are checked together against Redis's own clock: all messages (~30/s),
one chat (1/s) and one group (20/min, chats with a negative id); a slot is taken in all of them
only when all allow it, otherwise the caller learns how long to wait. A 429 sets a global
"pause until" key that makes every worker wait out ``retry_after``. Windows are widened by a
safety margin because Telegram counts arrival times, which jitter after we granted the slot.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass

import redis

from service import constants

PREFIX = constants.KEY_PREFIX + "tg:limit:"
PAUSE_KEY = PREFIX + "pause"

# KEYS: global zset, chat key, group zset, pause key.
# ARGV: global limit, global window ms, chat interval ms, group limit, group window ms,
#       is group (1/0), unique member. Returns 0 when the slot is taken, else ms to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local paused = redis.call('PTTL', KEYS[4])
if paused > wait then wait = paused end

local function window_wait(key, limit, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < limit then return 0 end
  local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end

local gl, gw = tonumber(ARGV[1]), tonumber(ARGV[2])
local w = window_wait(KEYS[1], gl, gw)
if w > wait then wait = w end

local interval = tonumber(ARGV[3])
local last = redis.call('GET', KEYS[2])
if last then
  w = tonumber(last) + interval - now
  if w > wait then wait = w end
end

local is_group = ARGV[6] == '1'
local ql, qw = tonumber(ARGV[4]), tonumber(ARGV[5])
if is_group then
  w = window_wait(KEYS[3], ql, qw)
  if w > wait then wait = w end
end

if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[7])
redis.call('PEXPIRE', KEYS[1], gw)
if interval > 0 then redis.call('SET', KEYS[2], now, 'PX', interval) end
if is_group then
  redis.call('ZADD', KEYS[3], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[3], qw)
end
return 0
"""

# Extend the pause to ARGV[1] ms from now unless a longer one is already set.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return redis.call('PTTL', KEYS[1])
"""


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    global_per_second: int = constants.TELEGRAM_GLOBAL_PER_SECOND
    per_chat_interval: float = constants.TELEGRAM_PER_CHAT_INTERVAL_SECONDS
    group_per_minute: int = constants.TELEGRAM_GROUP_PER_MINUTE
    group_window: float = 60.0
    margin: float = constants.TELEGRAM_LIMIT_MARGIN


class TelegramRateLimiter:
    """``acquire(chat_id)`` takes a send slot or says how long to wait; ``wait_turn`` sleeps
    (asynchronously) until it has one; ``pause(seconds)`` stops every worker after a 429."""

    def __init__(self, connection: redis.Redis, limits: TelegramLimits | None = None) -> None:
        self.redis = connection
        self.limits = limits or TelegramLimits()
        self._acquire = connection.register_script(_ACQUIRE)
        self._pause = connection.register_script(_PAUSE)

    def acquire(self, chat_id: int) -> float:
        """Take a slot for ``chat_id`` now (returns 0.0) or return the seconds to wait."""
        limits = self.limits
        stretch = 1.0 + limits.margin
        wait_ms = self._acquire(
            keys=[PREFIX + "global", f"{PREFIX}chat:{chat_id}", f"{PREFIX}group:{chat_id}",
                  PAUSE_KEY],
            args=[
                limits.global_per_second,
                int(1000 * stretch),
                int(limits.per_chat_interval * 1000 * stretch),
                limits.group_per_minute,
                int(limits.group_window * 1000 * stretch),
                "1" if chat_id < 0 else "0",
                uuid.uuid4().hex,
            ],
        )  # fmt: skip
        return max(int(wait_ms), 0) / 1000

    async def wait_turn(self, chat_id: int, max_wait: float) -> float:
        """Sleep until a slot is taken (returns 0.0); if the next wait alone would exceed
        ``max_wait`` seconds in all, give up and return how long the caller should wait."""
        waited = 0.0
        while True:
            wait = self.acquire(chat_id)
            if wait <= 0:
                return 0.0
            if waited + wait > max_wait:
                return wait
            # A little jitter so workers woken by the same slot do not collide on it.
            delay = wait + random.uniform(0, 0.01)
            await asyncio.sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> float:
        """Make every worker wait ``seconds`` (a 429's retry_after); returns the pause left."""
        left = self._pause(keys=[PAUSE_KEY], args=[max(int(seconds * 1000), 1)])
        return max(int(left), 0) / 1000

    def paused_for(self) -> float:
        return max(int(self.redis.pttl(PAUSE_KEY)), 0) / 1000
