"""Running the listeners of one process: sources into the queue, stopped cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
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
from service.queue import Enqueuer, EnqueueStats
from service.redis import RedisHandle
from service.sources.base import Listener

if TYPE_CHECKING:
    from service.api.ops import Check
    from service.sources.replay import ReplayBotAPI
    from service.store.subscribers import SubscriberStore

log = structlog.get_logger(__name__)


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            return


async def build_listeners(
    settings: Settings,
    connection: redis.Redis,
    redis_url: str,
    sink: Enqueuer,
    stack: AsyncExitStack,
    *,
    metrics: Metrics | None = None,
    sources: frozenset[str] | None = None,
    checks: dict[str, Check] | None = None,
) -> list[Listener]:
    """The live sources this configuration asks for (``sources`` narrows them to ``bot``,
    ``preview`` and/or ``mtproto``); their resources close with ``stack``; sources with a
    readiness of their own add it to ``checks`` (/readyz)."""
    listeners: list[Listener] = []
    wanted = sources or frozenset({"bot", "preview", "mtproto"})
    if settings.telegram_token is not None and "bot" in wanted:
        from service.bot.app import ALLOWED_UPDATES, setup_dispatcher
        from service.bot.settings import BotAccess, BotSettings
        from service.sources.bot import BotListener

        # One token, one getUpdates consumer: the listener that reads channel posts also serves
        # the subscriber bot's commands and alert buttons (Telegram refuses a second poller).
        bot_listener = BotListener.from_settings(
            settings, sink, webhook_url=settings.webhook_url, extra_updates=ALLOWED_UPDATES
        )
        dispatcher = setup_dispatcher(
            bot_listener.dispatcher,
            client=connection,
            access=BotAccess.from_settings(BotSettings()),
            static_channels=list(settings.channels),
        )
        listeners.append(bot_listener)
        listeners.append(MuteSweeper(dispatcher["store"]))
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
        if metrics is not None:
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


class MuteSweeper:
    """Brings muted subscriptions back when their mute ends (the bot's "mute 1 h" button)."""

    def __init__(self, store: SubscriberStore) -> None:
        self.store = store

    async def run(self, stop: asyncio.Event) -> None:
        from service.store.subscribers import sweep_mutes

        task = asyncio.create_task(sweep_mutes(self.store))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start_ops(
    settings: Settings,
    connection: redis.Redis,
    metrics: Metrics,
    stack: AsyncExitStack,
    checks: dict[str, Check] | None = None,
) -> None:
    """Serve /metrics, /healthz and /readyz of this process on TGWATCH_METRICS_PORT (if set).
    ``checks`` may gain entries later (sources built after the server starts): each is run."""
    if not settings.metrics_port:
        return
    from service.api.ops import async_readiness, ops_app, redis_ready, start_ops_server

    metrics.attach_redis(connection)

    async def redis_ok() -> bool:
        return await asyncio.to_thread(redis_ready, connection)

    checks = {} if checks is None else checks
    checks["redis"] = redis_ok
    app = ops_app(metrics, async_readiness(checks))
    runner = await start_ops_server(app, settings.metrics_host, settings.metrics_port)
    stack.push_async_callback(runner.cleanup)


async def run_listeners(
    settings: Settings,
    connection: redis.Redis,
    redis_url: str,
    *,
    replay: ReplayBotAPI | None = None,
    sources: frozenset[str] | None = None,
) -> EnqueueStats | None:
    """Run every configured source until a stop signal, or in demo mode until the bundled
    sample has gone through the bot listener. Returns the enqueue counts (None when a signal
    cut a demo short). The enqueuer is flushed on the way out: nothing a source handed over is
    lost."""
    stop = asyncio.Event()
    _install_stop_handlers(stop)
    metrics = Metrics()
    enqueuer = Enqueuer(
        connection, batch_size=settings.batch_size, batch_wait=settings.batch_wait, metrics=metrics
    )
    checks: dict[str, Check] = {}
    async with AsyncExitStack() as stack:
        stack.push_async_callback(enqueuer.close)
        await start_ops(settings, connection, metrics, stack, checks)
        if replay is not None:
            return await _replay(settings, enqueuer, stop, replay)
        listeners = await build_listeners(
            settings, connection, redis_url, enqueuer, stack, metrics=metrics, sources=sources,
            checks=checks,
        )  # fmt: skip
        if not listeners:
            log.error("no_sources", hint="set TGWATCH_TELEGRAM_TOKEN and/or TGWATCH_CHANNELS")
            return enqueuer.stats
        tasks = [asyncio.create_task(listener.run(stop)) for listener in listeners]
        stopper = asyncio.create_task(stop.wait())
        # A listener that dies stops the process (a supervisor restarts it) instead of running on
        # with a source silently missing.
        await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("listener_failed", error=f"{type(result).__name__}: {result}")
        log.info("listeners_stopped", enqueued=enqueuer.stats.enqueued)
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


def wait_for_queues(connection: redis.Redis, names: Sequence[str], timeout: float) -> bool:
    """Wait until the queues are empty and no job of theirs is running; False on timeout."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    deadline = time.monotonic() + timeout
    while True:
        busy = 0
        for name in names:
            queue = Queue(name, connection=connection)
            busy += queue.count + len(StartedJobRegistry(name, connection=connection))
        if busy == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


async def run_service(
    settings: Settings, redis_handle: RedisHandle, workers: int, *, demo: bool
) -> str | None:
    """`tgwatch run`: N worker processes and the listeners of this process, stopped together.

    In demo mode the local demo parties start first (workers must know where the local Telegram
    is), the bundled sample is replayed, and once the queues are drained a summary is returned.
    """
    from workers.runner import (
        WorkerSpec,
        start_worker_processes,
        stop_worker_processes,
        worker_env,
    )

    connection = redis_handle.client
    queues = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)
    demo_parties = None
    overrides: dict[str, str] = {}
    if demo:
        from service.demo import Demo

        demo_parties = await Demo.start(connection)
        overrides = demo_parties.worker_env()
    env = worker_env(redis_handle.url, **overrides)
    specs = [WorkerSpec(env, redis_handle.url, queues, False, index) for index in range(workers)]
    started = time.monotonic()
    procs = start_worker_processes(specs)
    stats: EnqueueStats | None = None
    try:
        replay = demo_parties.replay if demo_parties is not None else None
        stats = await run_listeners(settings, connection, redis_handle.url, replay=replay)
        if demo_parties is not None and stats is not None:
            # In a thread: the local Telegram and webhook receiver on this loop keep answering.
            drained = await asyncio.to_thread(
                wait_for_queues, connection, queues, constants.DEMO_TIMEOUT_SECONDS
            )
            if not drained:
                log.warning("demo_queues_not_drained", seconds=constants.DEMO_TIMEOUT_SECONDS)
    finally:
        await asyncio.to_thread(stop_worker_processes, procs)
        if demo_parties is not None:
            await demo_parties.stop()
    if demo_parties is None or stats is None:
        return None
    from service.summary import demo_summary

    hint = "tgwatch"
    if settings.redis_url is None:
        hint = f"TGWATCH_DATA_DIR={settings.data_dir} tgwatch"
    summary = demo_summary(connection, stats, time.monotonic() - started, hint)
    lines = [summary, *demo_parties.report()]
    return "\n".join(lines)
