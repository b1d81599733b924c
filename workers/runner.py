"""Worker processes: non-forking RQ workers that build their context once and serve jobs.

``run_worker`` is the one entry point of a worker process (``tgwatch worker`` runs it in this
process or in N spawned children, ``tgwatch run`` in N children): it reads the settings, builds
the context and the RQ worker, serves its ops endpoints on the port its parent planned, and
works until told to stop.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from rq import SimpleWorker
from rq.defaults import DEFAULT_MAINTENANCE_TASK_INTERVAL
from rq.serializers import JSONSerializer
from rq.utils import now

from service import constants
from service.config import Settings, load_settings
from service.logging import configure_logging
from service.metrics import Metrics
from service.ops import redis_ready, start_ops_server_thread, sync_readiness, workers_registered
from workers.context import WorkerContext, current, install
from workers.jobs import run_maintenance

log = structlog.get_logger(__name__)

ALL_QUEUES = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)


class TgwatchWorker(SimpleWorker):
    """A SimpleWorker: each job runs in the worker process itself, with no fork per job (~14 ms
    each here), so the rules index, the analyzers, the Bot and the HTTP client built at start-up
    stay warm across jobs. Its maintenance tick also recovers deliveries of dead workers and
    enqueues due digest flushes; RQ's own registry cleaning keeps its ten-minute pace."""

    def __init__(self, *args: Any, recovery_interval: int, **kwargs: Any) -> None:
        # RQ blocks on the queue for worker_ttl - 15 s between ticks: keep that short.
        kwargs.setdefault("worker_ttl", recovery_interval + 15)
        kwargs["maintenance_interval"] = recovery_interval
        super().__init__(*args, **kwargs)
        self._rq_maintained_at: float | None = None

    def run_maintenance_tasks(self) -> None:
        try:
            run_maintenance(current().delivery)
        except Exception as exc:  # a failed tick is retried on the next one
            log.warning("delivery_maintenance_failed", error=type(exc).__name__)
        clock = time.monotonic()
        due = self._rq_maintained_at is None or (
            clock - self._rq_maintained_at >= DEFAULT_MAINTENANCE_TASK_INTERVAL
        )
        if due:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]  # rq is untyped
            self._rq_maintained_at = clock
        else:
            # RQ's clock for the next tick (rq annotates the attribute as None only).
            self.last_cleaned_at = now()  # type: ignore[assignment]


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to start: plain data, so it crosses a spawn boundary."""

    settings_env: dict[str, str]
    redis_url: str
    queues: tuple[str, ...] = ALL_QUEUES
    burst: bool = False
    index: int = 0
    metrics_port: int = 0


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
    metrics: Metrics,
    *,
    name: str | None = None,
) -> TgwatchWorker:
    """The composition root of a worker: its context first, then the RQ worker serving it."""
    context = WorkerContext.build(
        settings, connection, metrics, post_stage=constants.POSTS_QUEUE in queues
    )
    install(context)
    return TgwatchWorker(
        list(queues),
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        recovery_interval=settings.delivery.recovery_interval,
    )


def run_worker(spec: WorkerSpec, settings: Settings | None = None) -> bool:
    """Entry point of one worker process (also usable in the current process)."""
    if settings is None:
        os.environ.update(spec.settings_env)
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    connection = redis.Redis.from_url(spec.redis_url)
    metrics = Metrics()
    worker = build_worker(settings, connection, spec.queues, metrics)
    ops = None
    if spec.metrics_port:
        metrics.attach_redis(connection)
        readiness = sync_readiness(
            {
                "redis": lambda: redis_ready(connection),
                "worker_registered": lambda: workers_registered(connection, spec.queues),
            }
        )
        try:
            ops = start_ops_server_thread(
                metrics, readiness, settings.metrics_host, spec.metrics_port
            )
        except OSError as exc:
            log.error("ops_port_unavailable", port=spec.metrics_port, error=str(exc))
    log.info("worker_started", name=worker.name, queues=list(spec.queues), burst=spec.burst,
             metrics_port=spec.metrics_port or None)  # fmt: skip
    try:
        return bool(
            worker.work(burst=spec.burst, with_scheduler=not spec.burst, logging_level="WARNING")
        )
    finally:
        if ops is not None:
            ops.stop()
        current().close()
        install(None)
        connection.close()


def _child(spec: WorkerSpec) -> None:
    # The parent handles Ctrl-C for the group; RQ's own handlers do a warm shutdown on SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_worker(spec)


def start_worker_processes(
    specs: Sequence[WorkerSpec],
) -> list[multiprocessing.process.BaseProcess]:
    """Start worker processes with the spawn method (no state inherited from the parent)."""
    return [start_worker_process(spec) for spec in specs]


def start_worker_process(spec: WorkerSpec) -> multiprocessing.process.BaseProcess:
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_child, args=(spec,), name=f"tgwatch-worker-{spec.index}")
    process.start()
    return process


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
