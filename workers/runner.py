"""Worker processes: non-forking RQ workers that build their context once and serve jobs."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import redis
import structlog
from rq.serializers import JSONSerializer

from service import constants
from service.api.ops import (
    redis_ready,
    start_ops_server_thread,
    sync_readiness,
    workers_registered,
)
from service.config import Settings
from service.logging import configure_logging
from service.metrics import Metrics, worker_port
from workers.context import WorkerContext, install
from workers.delivery.context import DeliveryContext, get_context, set_context
from workers.delivery.settings import DeliverySettings
from workers.delivery.worker import DeliveryWorker

log = structlog.get_logger(__name__)

DEFAULT_QUEUES = (constants.POSTS_QUEUE,)


class TgwatchWorker(DeliveryWorker):
    """A SimpleWorker: each job runs in the worker process itself, with no fork per job (~14 ms
    each here), so the rules index, the analyzers, the Bot and the HTTP client built at start-up
    stay warm across jobs. Its maintenance tick also recovers deliveries of dead workers and
    flushes due digests (see workers.delivery.worker)."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to start: plain data, so it crosses a spawn boundary."""

    settings_env: dict[str, str]
    redis_url: str
    queues: tuple[str, ...] = DEFAULT_QUEUES
    burst: bool = False
    index: int = 0


def worker_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """What a spawned worker inherits: this process's TGWATCH_* variables, the Redis URL every
    process must share (the embedded server's socket, when there is one), and ``overrides``."""
    env = {key: value for key, value in os.environ.items() if key.startswith("TGWATCH_")}
    env["TGWATCH_REDIS_URL"] = redis_url
    env.update(overrides)
    return env


def build_worker(
    settings: Settings,
    connection: redis.Redis,
    queues: Sequence[str],
    *,
    name: str | None = None,
    metrics: Metrics | None = None,
) -> TgwatchWorker:
    """The composition root of a worker: contexts first, then the RQ worker serving them."""
    delivery = DeliverySettings()
    context = WorkerContext.build(settings, connection, metrics)
    install(context)
    deliveries = DeliveryContext.from_settings(settings, connection, delivery)
    deliveries.metrics = deliveries.telegram.metrics = context.metrics
    set_context(deliveries)
    return TgwatchWorker(
        list(queues),
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        recovery_interval=delivery.recovery_interval,
    )


def run_worker(spec: WorkerSpec) -> bool:
    """Entry point of one worker process (also usable in the current process)."""
    os.environ.update(spec.settings_env)
    from service.config import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    connection = redis.Redis.from_url(spec.redis_url)
    metrics = Metrics()
    worker = build_worker(settings, connection, spec.queues, metrics=metrics)
    ops = None
    port = worker_port(settings.metrics_port, spec.index)
    if port:
        # Each worker process serves its own /metrics: workers here never fork per job, so the
        # process's registry sees every job it ran.
        metrics.attach_redis(connection)
        readiness = sync_readiness(
            {
                "redis": lambda: redis_ready(connection),
                "worker_registered": lambda: workers_registered(connection, spec.queues),
            }
        )
        ops = start_ops_server_thread(metrics, readiness, settings.metrics_host, port)
    log.info(
        "worker_started",
        name=worker.name,
        queues=list(spec.queues),
        burst=spec.burst,
        metrics_port=port or None,
    )
    try:
        return bool(
            worker.work(burst=spec.burst, with_scheduler=not spec.burst, logging_level="WARNING")
        )
    finally:
        if ops is not None:
            ops.stop()
        get_context().close()
        set_context(None)
        connection.close()


def _child(spec: WorkerSpec) -> None:
    # The parent handles Ctrl-C for the group; RQ's own handlers do a warm shutdown on SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_worker(spec)


def start_worker_processes(
    specs: Sequence[WorkerSpec],
) -> list[multiprocessing.process.BaseProcess]:
    """Start worker processes with the spawn method (no state inherited from the parent)."""
    ctx = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    for spec in specs:
        process = ctx.Process(target=_child, args=(spec,), name=f"tgwatch-worker-{spec.index}")
        process.start()
        processes.append(process)
    return processes


def stop_worker_processes(
    processes: Sequence[multiprocessing.process.BaseProcess], timeout: float = 30.0
) -> None:
    """Warm shutdown: SIGTERM lets each worker finish its current job, then it exits."""
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
