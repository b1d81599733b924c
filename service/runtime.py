"""Running the listeners of one process: sources into the queue, stopped cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import redis
import structlog

from service.config import Settings
from service.queue import Enqueuer, EnqueueStats
from service.sources.base import Listener

log = structlog.get_logger(__name__)


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            return


async def run_listeners(
    settings: Settings, connection: redis.Redis, *, demo: bool
) -> EnqueueStats | None:
    """Run every configured source until a stop signal (or, in demo mode, until the bundled
    sample has been replayed). Returns the enqueue counts; None if stopped by a signal."""
    stop = asyncio.Event()
    _install_stop_handlers(stop)
    enqueuer = Enqueuer(connection, batch_size=settings.batch_size, batch_wait=settings.batch_wait)
    tasks: list[asyncio.Task[object]] = []
    try:
        if demo:
            from service.sources.files import ingest_files

            sample = sample_files()
            log.info("demo_replay", files=[path.name for path in sample])
            replay = asyncio.create_task(ingest_files(sample, enqueuer, chunk=5, delay=0.02))
            done, _ = await asyncio.wait(
                {replay, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
            )
            if replay not in done:
                replay.cancel()
                return None
            replay.result()
            return enqueuer.stats
        tasks = [
            asyncio.create_task(listener.run(stop))
            for listener in build_listeners(settings, connection, enqueuer)
        ]
        if not tasks:
            log.error("no_sources", hint="set TGWATCH_TELEGRAM_TOKEN and/or TGWATCH_CHANNELS")
            return enqueuer.stats
        await stop.wait()
        log.info("listeners_stopping")
        await asyncio.gather(*tasks, return_exceptions=True)
        return None
    finally:
        await enqueuer.close()
        log.info("listeners_stopped", enqueued=enqueuer.stats.enqueued)


def sample_files() -> list[Path]:
    from service.cli import SAMPLE_UPDATES

    return [SAMPLE_UPDATES]


def build_listeners(
    settings: Settings, connection: redis.Redis, sink: Enqueuer
) -> Sequence[Listener]:
    """The live sources this configuration asks for."""
    listeners: list[Listener] = []
    return listeners


def wait_for_queues(connection: redis.Redis, names: Sequence[str], timeout: float) -> bool:
    """Wait until the queues are empty and no job of theirs is running; False on timeout."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for name in names:
            queue = Queue(name, connection=connection)
            busy += queue.count + len(StartedJobRegistry(name, connection=connection))
        if busy == 0:
            return True
        time.sleep(0.1)
    return False
