"""Running the listeners of one process — sources into the queue — and `tgwatch run`'s group of
listeners and worker processes, stopped cleanly on a signal.

A stop can come at any moment: ``StopSignals`` (installed by the command's first line) catches a
signal that arrives while modules load or workers start, and ``stop_event`` carries it into the
event loop, where the loop's own handlers take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import redis
import structlog
from pydantic import SecretStr

from service import constants
from service.config import Settings
from service.metrics import Metrics
from service.ops import Check, async_readiness, ops_ports, redis_ready, start_ops
from service.queue import Enqueuer, EnqueueStats
from service.redis import RedisHandle
from service.sources.base import Listener

if TYPE_CHECKING:
    from service.sources.replay import ReplayBotAPI
    from workers.runner import Supervisor

log = structlog.get_logger(__name__)

SOURCES = ("bot", "preview", "mtproto")


class NoSourcesError(RuntimeError):
    """The configuration gives the listener nothing to read."""


def stop_event(requested: threading.Event | None = None) -> asyncio.Event:
    """An event set by SIGINT/SIGTERM from now on, or already set if ``requested`` (a signal
    caught before the loop ran) is."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            break
    if requested is not None and requested.is_set():
        stop.set()
    return stop


async def build_listeners(
    settings: Settings,
    connection: redis.Redis,
    redis_url: str,
    sink: Enqueuer,
    stack: AsyncExitStack,
    *,
    metrics: Metrics,
    sources: frozenset[str] | None = None,
    checks: dict[str, Check] | None = None,
) -> list[Listener]:
    """The live sources this configuration asks for (``sources`` narrows them to ``bot``,
    ``preview`` and/or ``mtproto``); their resources close with ``stack``; sources with a
    readiness of their own add it to ``checks`` (/readyz)."""
    listeners: list[Listener] = []
    wanted = sources or frozenset(SOURCES)
    if settings.telegram_token is not None and "bot" in wanted:
        from service.bot.access import BotAccess
        from service.bot.app import ALLOWED_UPDATES, setup_dispatcher
        from service.sources.bot import BotListener

        # One token, one getUpdates consumer: the listener that reads channel posts also serves
        # the subscriber bot's commands and alert buttons (Telegram refuses a second poller).
        bot_listener = BotListener.from_settings(
            settings, sink, webhook_url=settings.webhook_url, extra_updates=ALLOWED_UPDATES,
            metrics=metrics,
        )  # fmt: skip
        setup_dispatcher(
            bot_listener.dispatcher,
            client=connection,
            access=BotAccess.from_settings(settings.bot),
            static_channels=list(settings.channels),
            limits=settings.limits,
        )
        listeners.append(bot_listener)
    from service.store import watchlist

    async def added_channels() -> list[str]:
        return await asyncio.to_thread(watchlist.channels, connection)

    channels = list(settings.channels)
    # Poll when channels are configured, or could be added at run time (from the bot or the API).
    could_add = settings.telegram_token is not None or bool(await added_channels())
    if "preview" in wanted and (channels or could_add):
        from service.sources.preview import PreviewPoller, build_http_client
        from service.store.channels import ChannelStore

        store = ChannelStore.from_url(redis_url)
        stack.push_async_callback(store.aclose)
        http = await stack.enter_async_context(build_http_client(settings.preview_concurrency))
        metrics.register_channels("preview", channels)
        listeners.append(
            PreviewPoller.from_settings(
                settings, sink, store, http, channel_source=added_channels, metrics=metrics
            )
        )
    if "mtproto" in wanted:  # user accounts over MTProto: only when configured (Telethon extra)
        from service.sources.mtproto.listener import build_mtproto_listener

        mtproto = await build_mtproto_listener(
            settings, connection, redis_url, sink, stack, metrics=metrics,
            explicit=sources is not None and "mtproto" in sources,
        )  # fmt: skip
        if mtproto is not None:
            listeners.append(mtproto)
            if checks is not None:
                checks["mtproto"] = mtproto.ready
    return listeners


async def serve_ops(
    settings: Settings, connection: redis.Redis, metrics: Metrics, port: int,
    stack: AsyncExitStack, *, checks: dict[str, Check] | None = None,
) -> None:  # fmt: skip
    """/metrics, /healthz and /readyz of an async process (listeners, bot, API) on ``port``.
    ``checks`` may gain entries later (sources built after the server starts): each is run."""
    if not port:
        return
    metrics.attach_redis(connection)

    async def redis_ok() -> bool:
        return await asyncio.to_thread(redis_ready, connection)

    checks = {} if checks is None else checks
    checks["redis"] = redis_ok
    await start_ops(metrics, async_readiness(checks), settings.metrics_host, port,
                    stack)  # fmt: skip


async def run_listeners(
    settings: Settings,
    connection: redis.Redis,
    redis_url: str,
    stop: asyncio.Event,
    *,
    replay: ReplayBotAPI | None = None,
    sources: frozenset[str] | None = None,
    ops_port: int | None = None,
    metrics: Metrics | None = None,
) -> EnqueueStats | None:
    """Run every configured source until ``stop``, or in demo mode until the bundled sample has
    gone through the bot listener. Returns the enqueue counts (None when a signal cut a demo
    short). The enqueuer is flushed on the way out: nothing a source handed over is lost.
    Raises NoSourcesError when nothing is configured, RuntimeError when a listener failed."""
    metrics = metrics or Metrics()
    enqueuer = Enqueuer(
        connection, batch_size=settings.batch_size, batch_wait=settings.batch_wait, metrics=metrics
    )
    port = settings.metrics_port if ops_port is None else ops_port
    checks: dict[str, Check] = {}
    async with AsyncExitStack() as stack:
        stack.push_async_callback(enqueuer.close)
        await serve_ops(settings, connection, metrics, port, stack, checks=checks)
        if replay is not None:
            return await _replay(settings, enqueuer, stop, replay)
        listeners = await build_listeners(
            settings, connection, redis_url, enqueuer, stack, metrics=metrics, sources=sources,
            checks=checks,
        )  # fmt: skip
        if not listeners:
            raise NoSourcesError("no source is configured: set TGWATCH_TELEGRAM_TOKEN, "
                                 "TGWATCH_CHANNELS and/or MTProto accounts")  # fmt: skip
        tasks = [asyncio.create_task(listener.run(stop)) for listener in listeners]
        stopper = asyncio.create_task(stop.wait())
        # A listener that dies stops the process (a supervisor restarts it) instead of running on
        # with a source silently missing.
        await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        failed_early = not stop.is_set()
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        errors = [
            f"{type(result).__name__}: {result}"
            for result in results
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError)
        ]
        for error in errors:
            log.error("listener_failed", error=error)
        log.info("listeners_stopped", enqueued=enqueuer.stats.enqueued)
        if errors or failed_early:
            raise RuntimeError(errors[0] if errors else "a listener stopped on its own")
        return None


async def _replay(
    settings: Settings, enqueuer: Enqueuer, stop: asyncio.Event, replay: ReplayBotAPI
) -> EnqueueStats | None:
    """Read a local replay Bot API with the real bot listener until it has served everything."""
    from service.sources.bot import BotListener

    replay_settings = settings.model_copy(
        update={
            "telegram_api_url": replay.base_url,
            "telegram_token": SecretStr(replay.token),
            "webhook_secret": None,
        }
    )
    listener = BotListener.from_settings(replay_settings, enqueuer, mode="polling")
    listen_stop = asyncio.Event()
    task = asyncio.create_task(listener.run(listen_stop))
    started = time.monotonic()
    waiters = {asyncio.create_task(replay.drained.wait()), asyncio.create_task(stop.wait())}
    try:
        await asyncio.wait(
            {*waiters, task}, timeout=constants.DEMO_TIMEOUT_SECONDS, return_when="FIRST_COMPLETED"
        )
        listen_stop.set()
        await task
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    log.info("replay_done", seconds=round(time.monotonic() - started, 2),
             updates=len(replay.updates))  # fmt: skip
    return None if stop.is_set() else enqueuer.stats


def wait_for_queues(
    connection: redis.Redis, names: Sequence[str], timeout: float, stop: threading.Event
) -> bool:
    """Wait until the queues are empty and no job of theirs is running; False on timeout or
    when ``stop`` is set first."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    deadline = time.monotonic() + timeout
    while not stop.is_set():
        busy = 0
        for name in names:
            queue = Queue(name, connection=connection)
            busy += queue.count + len(StartedJobRegistry(name, connection=connection))
        if busy == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        stop.wait(0.1)
    return False


async def _supervise(supervisor: Supervisor, stop: asyncio.Event) -> None:
    """Restart dead worker processes until the service stops."""
    while not stop.is_set():
        await asyncio.to_thread(supervisor.check)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_service(
    settings: Settings,
    redis_handle: RedisHandle,
    workers: int,
    *,
    demo: bool,
    requested: threading.Event | None = None,
) -> str | None:
    """`tgwatch run`: N worker processes and the listeners of this process, stopped together.

    In demo mode the local demo parties start first (workers must know where the local Telegram
    is), the bundled sample is replayed, and once the queues are drained a summary is returned.
    """
    from workers.runner import ALL_QUEUES, Supervisor, WorkerSpec, worker_env

    stop = stop_event(requested)
    connection = redis_handle.client
    demo_parties = None
    overrides: dict[str, str] = {}
    if demo and not stop.is_set():
        from service.demo import Demo

        demo_parties = await Demo.start(connection)
        overrides = demo_parties.worker_env()
    env = worker_env(redis_handle.url, **overrides)
    listener_port, worker_ports = ops_ports(settings.metrics_port, workers, listener=True)
    specs = [
        WorkerSpec(env, redis_handle.url, ALL_QUEUES, False, index, worker_ports[index])
        for index in range(workers)
    ]
    started = time.monotonic()
    metrics = Metrics()
    supervisor = Supervisor(specs, metrics)
    if not stop.is_set():
        supervisor.start()
    watcher = asyncio.create_task(_supervise(supervisor, stop))
    stats: EnqueueStats | None = None
    drained = threading.Event()
    try:
        replay = demo_parties.replay if demo_parties is not None else None
        if not stop.is_set():
            stats = await run_listeners(settings, connection, redis_handle.url, stop,
                                        replay=replay, ops_port=listener_port,
                                        metrics=metrics)  # fmt: skip
        if demo_parties is not None and stats is not None:
            # In a thread: the local Telegram and webhook receiver on this loop keep answering.
            waiter = asyncio.create_task(asyncio.to_thread(
                wait_for_queues, connection, ALL_QUEUES, constants.DEMO_TIMEOUT_SECONDS, drained
            ))  # fmt: skip
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            drained.set()
            stopper.cancel()
            if not await waiter and not stop.is_set():
                log.warning("demo_queues_not_drained", seconds=constants.DEMO_TIMEOUT_SECONDS)
    finally:
        drained.set()
        watcher.cancel()
        await asyncio.to_thread(supervisor.stop)
        if demo_parties is not None:
            await demo_parties.stop()
    if demo_parties is None or stats is None or stop.is_set():
        return None
    from service.summary import demo_summary

    hint = f"TGWATCH_DATA_DIR={settings.data_dir} tgwatch"
    summary = demo_summary(connection, stats, time.monotonic() - started, hint)
    lines = [summary, *demo_parties.report()]
    return "\n".join(lines)
