"""Per-channel state of the live sources in Redis: watermark, text hashes and health.

Layout (every key under constants.KEY_PREFIX, see constants.SOURCE_*):
- ``source:<channel>``  HASH  watermark, last_success, last_error, last_error_at, lag_seconds,
  failures, next_poll, newest_date, source
- ``source:<channel>:hashes``  HASH  message id → text hash of the version last emitted (capped
  to the newest constants.PREVIEW_HASHES_KEPT ids)
- ``sources``  SET  every channel with state, for `tgwatch status`

Times are Unix seconds (float). ``<channel>`` is the lower-cased username (``Post.channel_key``).

The pollers run on asyncio, so ``ChannelStore`` uses ``redis.asyncio``; `tgwatch status` is a
plain synchronous command, so ``list_channel_health`` reads the same keys with a sync client.
One poller per channel is assumed; the watermark only ever moves forward even so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from service import constants
from service.redis import async_client_from_url, text

# Record the text hashes of emitted posts, move the watermark forward (never back), and drop the
# hashes of the oldest ids beyond the cap; one round trip, atomic.
_SEEN_SCRIPT = """
local state, hashes, channels = KEYS[1], KEYS[2], KEYS[3]
local channel, watermark, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SADD', channels, channel)
for i = 4, #ARGV, 2 do
  redis.call('HSET', hashes, ARGV[i], ARGV[i + 1])
end
if watermark then
  local current = tonumber(redis.call('HGET', state, 'watermark'))
  if not current or watermark > current then
    redis.call('HSET', state, 'watermark', watermark)
  end
end
local count = redis.call('HLEN', hashes)
if count > keep then
  local ids = redis.call('HKEYS', hashes)
  local numbers = {}
  for _, id in ipairs(ids) do table.insert(numbers, tonumber(id)) end
  table.sort(numbers)
  for i = 1, count - keep do redis.call('HDEL', hashes, tostring(numbers[i])) end
end
return count
"""


def state_key(channel: str) -> str:
    return constants.SOURCE_STATE_PREFIX + channel.lower()


def hashes_key(channel: str) -> str:
    return state_key(channel) + ":hashes"


def _float(value: object) -> float | None:
    return None if value is None else float(text(value))


def _int(value: object) -> int | None:
    return None if value is None else int(text(value))


@dataclass(frozen=True)
class ChannelHealth:
    """What `tgwatch status` shows for one channel a source watches."""

    channel: str
    source: str | None = None
    watermark: int | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    lag_seconds: float | None = None
    failures: int = 0
    next_poll: float | None = None
    newest_date: float | None = None

    @classmethod
    def from_mapping(cls, channel: str, raw: Mapping[Any, Any]) -> ChannelHealth:
        """Decode a ``source:<channel>`` hash (bytes or str keys and values)."""
        data = {text(key): value for key, value in raw.items()}
        error = data.get("last_error")
        source = data.get("source")
        return cls(
            channel=channel,
            source=None if source is None else text(source),
            watermark=_int(data.get("watermark")),
            last_success=_float(data.get("last_success")),
            last_error=None if error is None else text(error),
            last_error_at=_float(data.get("last_error_at")),
            lag_seconds=_float(data.get("lag_seconds")),
            failures=_int(data.get("failures")) or 0,
            next_poll=_float(data.get("next_poll")),
            newest_date=_float(data.get("newest_date")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChannelStore:
    """Async access to the per-channel source state (see the module docstring for the layout)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._seen = client.register_script(_SEEN_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> ChannelStore:
        """A store on its own asyncio client; close it with ``aclose()``."""
        return cls(async_client_from_url(url))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def watermark(self, channel: str) -> int | None:
        """The highest message id seen in ``channel`` so far, or None before its first poll."""
        return _int(await self.client.hget(state_key(channel), "watermark"))

    async def hashes(self, channel: str, message_ids: Sequence[int]) -> dict[int, str]:
        """The recorded text hash of each of ``message_ids`` that has one."""
        if not message_ids:
            return {}
        values = await self.client.hmget(hashes_key(channel), [str(i) for i in message_ids])
        return {
            message_id: text(value)
            for message_id, value in zip(message_ids, values, strict=True)
            if value is not None
        }

    async def record_seen(
        self, channel: str, hashes: Mapping[int, str], watermark: int | None
    ) -> None:
        """Remember emitted versions and move the watermark forward (never back)."""
        args: list[str | int] = [
            channel.lower(),
            "" if watermark is None else watermark,
            constants.PREVIEW_HASHES_KEPT,
        ]
        for message_id, content_hash in hashes.items():
            args.extend((message_id, content_hash))
        keys = [state_key(channel), hashes_key(channel), constants.SOURCE_CHANNELS_KEY]
        await self._seen(keys=keys, args=args)

    async def record_success(
        self,
        channel: str,
        *,
        at: float,
        next_poll: float | None = None,
        newest_date: float | None = None,
        source: str = "preview",
    ) -> None:
        """A poll went through: clear the failure count, note the time and the lag."""
        mapping: dict[FieldT, EncodableT] = {
            "last_success": at,
            "failures": 0,
            "source": source,
        }
        if next_poll is not None:
            mapping["next_poll"] = next_poll
        if newest_date is not None:
            mapping["newest_date"] = newest_date
            mapping["lag_seconds"] = max(0.0, at - newest_date)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(constants.SOURCE_CHANNELS_KEY, channel.lower())
        pipe.hset(state_key(channel), mapping=mapping)
        await pipe.execute()

    async def record_error(
        self,
        channel: str,
        *,
        at: float,
        error: str,
        next_poll: float | None = None,
        source: str = "preview",
    ) -> int:
        """A poll failed: keep the reason and time, count it; returns consecutive failures."""
        mapping: dict[FieldT, EncodableT] = {
            "last_error": error,
            "last_error_at": at,
            "source": source,
        }
        if next_poll is not None:
            mapping["next_poll"] = next_poll
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(constants.SOURCE_CHANNELS_KEY, channel.lower())
        pipe.hset(state_key(channel), mapping=mapping)
        pipe.hincrby(state_key(channel), "failures", 1)
        results = await pipe.execute()
        return int(results[-1])

    async def set_next_poll(self, channel: str, when: float) -> None:
        await self.client.hset(state_key(channel), "next_poll", when)

    async def health(self, channel: str) -> ChannelHealth:
        return ChannelHealth.from_mapping(
            channel.lower(), await self.client.hgetall(state_key(channel))
        )

    async def all_health(self) -> list[ChannelHealth]:
        """Every channel with state, sorted by name."""
        names = sorted(
            text(name) for name in await self.client.smembers(constants.SOURCE_CHANNELS_KEY)
        )
        return [await self.health(name) for name in names]


def list_channel_health(client: redis.Redis) -> list[ChannelHealth]:
    """Every channel with state, sorted by name, through a synchronous client (for the CLI)."""
    names = sorted(text(name) for name in client.smembers(constants.SOURCE_CHANNELS_KEY))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(state_key(name))
    return [
        ChannelHealth.from_mapping(name, raw)
        for name, raw in zip(names, pipe.execute(), strict=True)
    ]
