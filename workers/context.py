"""The per-process context of a worker: built once at start-up, handed to every job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from service.config import Settings
from service.metrics import Metrics
from service.store.posts import PostStore

_current: WorkerContext | None = None


@dataclass
class WorkerContext:
    """Everything a job needs: clients, stores, the compiled rules and the analyzers.

    RQ calls job functions by name with only their payload, so the worker's composition root
    installs one context per process with ``install`` and jobs read it with ``current``; nothing
    here is created at import time.
    """

    settings: Settings
    redis: Redis
    posts: PostStore
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls, settings: Settings, connection: Redis, metrics: Metrics | None = None
    ) -> WorkerContext:
        return cls(
            settings=settings,
            redis=connection,
            posts=PostStore(connection),
            metrics=metrics or Metrics(),
        )


def install(context: WorkerContext) -> None:
    global _current  # noqa: PLW0603 - the one slot RQ leaves us to pass a context to jobs
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context installed: jobs run inside `tgwatch worker`")
    return _current
