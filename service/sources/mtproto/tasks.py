"""Stopping asyncio tasks for sure: cancel, and cancel again any that swallowed the cancel."""

from __future__ import annotations

import asyncio
from typing import Any

# Stopping cancels the account's tasks, again every 0.1 s for one that swallowed the cancel,
# giving up waiting after 10 s (a stop must not hang on a stuck request).
CANCEL_ROUNDS = 100
CANCEL_WAIT_SECONDS = 0.1


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again any that swallowed the first
    cancel (a library catching CancelledError mid-request, or 3.11's wait_for race)."""
    for _ in range(CANCEL_ROUNDS):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_WAIT_SECONDS)
    await asyncio.gather(*tasks, return_exceptions=True)
