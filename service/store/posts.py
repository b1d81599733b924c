"""Stored post versions in Redis: recent posts per channel (capped) and per-channel stats.

Layout (every key under constants.KEY_PREFIX):
- ``post:<channel>/<id>``  HASH  content hash → JSON {"seq", "post", "enrichment", "stored_at"}
- ``channel:<channel>:posts``  ZSET  message id → message id (newest kept, capped)
- ``channel:<channel>:stats``  HASH  posts, versions, last_date, last_stored_at, title
- ``channels``  SET  every channel a post was stored for
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from service import constants
from service.core.model import Enrichment
from service.core.post import Post
from service.redis import text
from service.store.batch import Batch, LuaScript

P = constants.KEY_PREFIX
CHANNELS_KEY = P + "channels"

# HSETNX the version, then bump stats and the recent list only when the version was new; the
# whole step is one round trip and atomic, so two workers storing the same version count it once.
_STORE_SCRIPT = """
local post_key, posts_key, stats_key, channels_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hash, doc, message_id, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local date, stored_at, title, cap = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local max_versions = tonumber(ARGV[9])
if redis.call('HEXISTS', post_key, hash) == 1 then return 0 end
local seq = redis.call('HLEN', post_key)
if seq >= max_versions then return -1 end
local stored = string.gsub(doc, '"seq": 0', '"seq": ' .. seq, 1)
redis.call('HSET', post_key, hash, stored)
if seq == 0 then
  redis.call('HINCRBY', stats_key, 'posts', 1)
  redis.call('ZADD', posts_key, message_id, message_id)
  local n = redis.call('ZCARD', posts_key)
  if n > cap then
    local old = redis.call('ZRANGE', posts_key, 0, n - cap - 1)
    for _, id in ipairs(old) do redis.call('DEL', 'PREFIX' .. 'post:' .. channel .. '/' .. id) end
    redis.call('ZREMRANGEBYRANK', posts_key, 0, n - cap - 1)
  end
end
redis.call('HINCRBY', stats_key, 'versions', 1)
local last = redis.call('HGET', stats_key, 'last_date')
if (not last) or last < date then redis.call('HSET', stats_key, 'last_date', date) end
redis.call('HSET', stats_key, 'last_stored_at', stored_at)
if title ~= '' then redis.call('HSET', stats_key, 'title', title) end
redis.call('SADD', channels_key, channel)
return seq + 1
""".replace("PREFIX", P)
_STORE = LuaScript(_STORE_SCRIPT)


@dataclass(frozen=True)
class StoredVersion:
    seq: int  # 0 for the first version of a post, 1 for its first edit, ...
    post: Post
    enrichment: Enrichment
    stored_at: float


def json_parts(
    post: Post, enrichment: Enrichment, post_data: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The JSON of a post (of ``post_data``, its ``to_dict()``, when given) and of its
    enrichment, encoded once and shared by what stores them: the version and its alerts."""
    return (
        json.dumps(post.to_dict() if post_data is None else post_data, ensure_ascii=False),
        json.dumps(enrichment.to_dict(), ensure_ascii=False),
    )


def _post_key(key: str) -> str:
    return f"{P}post:{key}"


def _posts_key(channel: str) -> str:
    return f"{P}channel:{channel}:posts"


def _stats_key(channel: str) -> str:
    return f"{P}channel:{channel}:stats"


class PostStore:
    """Stores and reads post versions; one instance per process, sharing its Redis client."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        recent_per_channel: int = constants.RECENT_POSTS_PER_CHANNEL,
        versions_per_post: int = constants.VERSIONS_PER_POST,
    ) -> None:
        self.connection = connection
        self.recent_per_channel = recent_per_channel
        self.versions_per_post = versions_per_post

    def store(self, post: Post, enrichment: Enrichment | None = None) -> int:
        """Store one version. Returns its sequence number (1 = first version), 0 when this exact
        version was already stored, -1 when the post has too many versions to keep another."""
        batch = Batch(self.connection)
        self.queue_store(batch, post, json_parts(post, enrichment or Enrichment()))
        return int(batch.execute()[0])

    def queue_store(self, batch: Batch, post: Post, parts: tuple[str, str]) -> None:
        """Queue ``store`` of one version in ``batch`` (its reply: what ``store`` returns).
        ``parts`` are the post's and its enrichment's JSON (``json_parts``)."""
        now = time.time()
        post_json, enrichment_json = parts
        doc = (
            f'{{"seq": 0, "post": {post_json}, "enrichment": {enrichment_json}, '
            f'"stored_at": {json.dumps(now)}}}'
        )
        channel = post.channel_key
        batch.script(
            _STORE,
            [_post_key(post.key), _posts_key(channel), _stats_key(channel), CHANNELS_KEY],
            [
                post.content_hash,
                doc,
                post.message_id,
                channel,
                post.date.isoformat(),
                f"{now:.3f}",
                post.channel_title or "",
                self.recent_per_channel,
                self.versions_per_post,
            ],
        )

    def has_version(self, post: Post) -> bool:
        """True when this version of the post is stored (its processing finished)."""
        return bool(self.connection.hexists(_post_key(post.key), post.content_hash))

    def has_versions(self, posts: list[Post]) -> list[bool]:
        """``has_version`` for many posts in one round trip."""
        batch = Batch(self.connection)
        self.queue_has_versions(batch, posts)
        return [bool(found) for found in batch.execute()]

    def queue_has_versions(self, batch: Batch, posts: Sequence[Post]) -> None:
        """Queue ``has_version`` of each post in ``batch`` (one reply per post)."""
        for post in posts:
            batch.pipe.hexists(_post_key(post.key), post.content_hash)

    def queue_version_count(self, batch: Batch, post: Post) -> None:
        """Queue the count of stored versions of ``post`` (any content) in ``batch``."""
        batch.pipe.hlen(_post_key(post.key))

    def versions(self, key: str) -> list[StoredVersion]:
        """Every stored version of a post (``channel/id``), oldest first."""
        raw = self.connection.hgetall(_post_key(key.lower()))
        found = [self._decode(text(value)) for value in raw.values()]
        return sorted(found, key=lambda version: version.seq)

    def latest(self, key: str) -> StoredVersion | None:
        found = self.versions(key)
        return found[-1] if found else None

    def recent(self, channel: str, limit: int = 20) -> list[StoredVersion]:
        """The newest posts of a channel (latest version of each), newest first."""
        ids = self.connection.zrevrange(_posts_key(channel.lower()), 0, limit - 1)
        result: list[StoredVersion] = []
        for raw_id in ids:
            latest = self.latest(f"{channel.lower()}/{int(raw_id)}")  # type: ignore[arg-type]
            if latest is not None:
                result.append(latest)
        return result

    def channels(self) -> list[str]:
        return sorted(text(member) for member in self.connection.smembers(CHANNELS_KEY))

    def stats(self, channel: str) -> dict[str, str]:
        raw = self.connection.hgetall(_stats_key(channel.lower()))
        return {text(key): text(value) for key, value in raw.items()}

    @staticmethod
    def _decode(raw: str) -> StoredVersion:
        data: dict[str, Any] = json.loads(raw)
        return StoredVersion(
            seq=int(data["seq"]),
            post=Post.from_dict(data["post"]),
            enrichment=Enrichment.from_dict(data.get("enrichment") or {}),
            stored_at=float(data["stored_at"]),
        )
