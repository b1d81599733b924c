"""Worker processes: the one entry point of a worker process, and the supervisor that keeps N of
them running.

``run_worker`` reads the settings, builds the context and serves jobs with a ``TgwatchWorker``
(workers/worker.py) until told to stop. It rides a Redis outage out: when the RQ loop quits
because Redis went away, it waits (capped backoff, logged once per outage; /readyz says not
ready meanwhile) and serves again — jobs it held are handed back first. ``Supervisor`` runs N
worker processes for `tgwatch worker -n N` and `tgwatch run`, restarting one that dies with a
backoff, and says so in the logs and in ``tgwatch_process_restarts_total``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import redis
import structlog
from rq.serializers import JSONSerializer

from service import constants
from service.config import Settings, load_settings
from service.core import secretbox
from service.core.retry import backoff
from service.logging import configure_logging
from service.metrics import Metrics
from service.ops import redis_ready, start_ops_server_thread, sync_readiness, workers_registered
from service.redis import Outage, client_from_url, wait_for_redis
from service.store.workers import WorkerLeases
from workers.context import WorkerContext, current, install
from workers.worker import Heartbeat, TgwatchWorker, new_lease, requeue

log = structlog.get_logger(__name__)

ALL_QUEUES = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)


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


class StoppableWorker(TgwatchWorker):
    """Shares one stop flag with the process, so a signal that comes while the process waits
    for Redis (between two RQ loops) still stops it."""

    def __init__(self, *args: Any, stop: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_flag = stop

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_flag.set()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq is untyped


def build_worker(
    settings: Settings,
    connection: redis.Redis,
    queues: Sequence[str],
    metrics: Metrics,
    *,
    lease: str | None = None,
    stop: threading.Event | None = None,
) -> StoppableWorker:
    """The composition root of a worker: its context first, then the RQ worker serving it."""
    lease = lease or new_lease()
    context = WorkerContext.build(
        settings, connection, metrics, post_stage=constants.POSTS_QUEUE in queues, lease=lease
    )
    install(context)
    return _rq_worker(connection, queues, lease, stop or threading.Event())


def _rq_worker(
    connection: redis.Redis, queues: Sequence[str], lease: str, stop: threading.Event
) -> StoppableWorker:
    # RQ's name for it: the lease (so `status` finds its alive key) and a generation, since a
    # process starts a new RQ loop after each Redis outage.
    name = f"{lease}/{time.time_ns() % 10**9:x}"
    return StoppableWorker(list(queues), connection=connection, serializer=JSONSerializer,
                           lease=lease, stop=stop, name=name)  # fmt: skip


def run_worker(spec: WorkerSpec, settings: Settings | None = None) -> bool:
    """Entry point of one worker process (also usable in the current process)."""
    if settings is None:
        os.environ.update(spec.settings_env)
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level, settings.secret_values())
        secretbox.install(settings.secret_box())
    connection = client_from_url(spec.redis_url)
    stop = threading.Event()
    outage = Outage("worker")
    lease = new_lease()
    metrics = Metrics()
    if not wait_for_redis(connection, outage, stop):
        return False
    worker = build_worker(settings, connection, spec.queues, metrics, lease=lease, stop=stop)
    leases = WorkerLeases(connection)
    heartbeat = Heartbeat(leases, lease).start()
    ops = _serve_ops(settings, connection, metrics, spec)
    log.info("worker_started", lease=lease, queues=list(spec.queues), burst=spec.burst,
             metrics_port=spec.metrics_port or None)  # fmt: skip
    worked = False
    try:
        while not stop.is_set():
            try:
                _hand_back_own_jobs(connection, leases, lease)
                worked = bool(worker.work(burst=spec.burst, with_scheduler=False,
                                          logging_level="WARNING")) or worked  # fmt: skip
            except redis.RedisError as exc:
                log.debug("worker_loop_interrupted", error=type(exc).__name__)
            if stop.is_set() or worker.stop_flag.is_set():
                break
            if redis_ready(connection):
                if spec.burst:
                    break
                # The RQ loop quit with Redis up (an unexpected error): not in a tight loop.
                stop.wait(backoff(2, constants.REDIS_RETRY_MIN_SECONDS,
                                  constants.REDIS_RETRY_MAX_SECONDS))  # fmt: skip
            elif not wait_for_redis(connection, outage, stop):
                break
            worker = _rq_worker(connection, spec.queues, lease, stop)
    finally:
        heartbeat.stop()
        if ops is not None:
            ops.stop()
        _sign_off(leases, lease)
        current().close()
        install(None)
        connection.close()
    return worked


def _hand_back_own_jobs(connection: redis.Redis, leases: WorkerLeases, lease: str) -> None:
    """Jobs this process held when its last RQ loop quit are not running: queue them again."""
    for job_id in leases.held(lease):
        requeue(connection, job_id, JSONSerializer)
        leases.release(lease, job_id)
        log.warning("job_recovered", job_id=job_id, dead_worker=lease)


def _sign_off(leases: WorkerLeases, lease: str) -> None:
    """A clean stop holds no job: say so, so nobody waits for this worker's alive key to lapse.
    A worker that cannot reach Redis leaves its keys to lapse; recovery does the rest."""
    try:
        if not leases.held(lease):
            leases.forget(lease)
    except redis.RedisError:
        pass


def _serve_ops(settings: Settings, connection: redis.Redis, metrics: Metrics,
               spec: WorkerSpec) -> Any:  # fmt: skip
    if not spec.metrics_port:
        return None
    metrics.attach_redis(connection)
    readiness = sync_readiness(
        {
            "redis": lambda: redis_ready(connection),
            "worker_registered": lambda: workers_registered(connection, spec.queues),
        }
    )
    try:
        return start_ops_server_thread(metrics, readiness, settings.metrics_host, spec.metrics_port)
    except OSError as exc:
        log.error("ops_port_unavailable", port=spec.metrics_port, error=str(exc))
        return None


def _child(spec: WorkerSpec) -> None:
    # The parent handles Ctrl-C for the group; a SIGTERM before RQ's handlers are in place (the
    # context takes seconds to build) ends this process at once: it holds no job yet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    run_worker(spec)


def start_worker_process(spec: WorkerSpec) -> multiprocessing.process.BaseProcess:
    """Start a worker process with the spawn method (no state inherited from the parent)."""
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


@dataclass
class _Child:
    spec: WorkerSpec
    process: multiprocessing.process.BaseProcess
    started: float
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """N worker processes kept running: one that dies is restarted after a backoff (reset once
    a child has lived RESTART_RESET_AFTER_SECONDS), logged, and counted."""

    specs: Sequence[WorkerSpec]
    metrics: Metrics | None = None
    children: list[_Child] = field(default_factory=list)
    restarts: int = 0

    def start(self) -> Supervisor:
        now = time.monotonic()
        self.children = [_Child(s, start_worker_process(s), now) for s in self.specs]
        return self

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        return [child.process for child in self.children]

    def check(self) -> None:
        """Restart what died (call it every second or so)."""
        now = time.monotonic()
        for child in self.children:
            if child.process.is_alive():
                continue
            if child.restart_at is None:
                lived = now - child.started
                child.failures = (
                    1 if lived >= constants.RESTART_RESET_AFTER_SECONDS else (child.failures + 1)
                )
                delay = backoff(child.failures, constants.RESTART_MIN_SECONDS,
                                constants.RESTART_MAX_SECONDS, jitter=0.2)  # fmt: skip
                child.restart_at = now + delay
                log.error("worker_process_died", index=child.spec.index,
                          exitcode=child.process.exitcode, restart_in=round(delay, 1))  # fmt: skip
            elif now >= child.restart_at:
                child.process = start_worker_process(child.spec)
                child.started, child.restart_at = now, None
                self.restarts += 1
                if self.metrics is not None:
                    self.metrics.process_restarted("worker")
                log.warning("worker_process_restarted", index=child.spec.index,
                            failures=child.failures)  # fmt: skip

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Supervise until ``stop`` is set, then stop the children (warm shutdown)."""
        try:
            while not stop.wait(interval):
                self.check()
        finally:
            self.stop()

    def stop(self) -> None:
        stop_worker_processes(self.processes)
