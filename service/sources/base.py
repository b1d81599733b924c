"""What every live source needs: the sink it hands posts to, and the listener shape it has."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from service.core.formats.result import Rejected
from service.core.post import Post


@runtime_checkable
class PostSink(Protocol):
    """Where sources put posts: the queue in production, a list in unit tests.

    Dedupe happens in the sink, so a source may put the same post version twice (after a restart,
    or when two sources see it) without it travelling further twice.
    """

    async def put(self, post: Post) -> bool:
        """Enqueue a post version; False when this version (channel, id, text hash) was seen."""
        ...

    async def reject(self, rejected: Rejected) -> None:
        """Set a malformed item aside where it can be inspected."""
        ...


@runtime_checkable
class Listener(Protocol):
    """A long-running source: runs until ``stop`` is set, then returns after a clean shutdown."""

    async def run(self, stop: asyncio.Event) -> None: ...


async def wait_or_stop(stop: asyncio.Event, delay: float) -> bool:
    """Wait up to ``delay`` seconds; True when ``stop`` was set first (or already)."""
    if stop.is_set():
        return True
    if delay <= 0:
        return False
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return False
    return True
