"""The RQ worker every tgwatch worker process runs: non-forking, and never losing a job.

RQ's own dequeue pops with a plain BLPOP when a worker listens on several queues, so a job taken
by a worker that dies right then is in no queue or registry. This worker takes jobs with LMOVE
into a holding list of its own (``service.store.workers``) and releases a job only once RQ has
recorded what became of it. A thread refreshes the worker's short alive key whatever the job
does; when a worker dies, the alive key lapses and any other worker's maintenance tick hands its
held jobs back to their queues — within ``WORKER_ALIVE_TTL_SECONDS`` plus a tick.

The same tick runs the scheduler (retries and delayed jobs enqueued when due) under a short lock
held by this process itself — RQ's scheduler would fork a process that can outlive its worker —
and the delivery chores (due digest flushes). RQ's own registry cleaning keeps its ten-minute
pace.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
import structlog
from rq import Queue, SimpleWorker
from rq.defaults import DEFAULT_MAINTENANCE_TASK_INTERVAL
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import now
from rq.worker import WorkerStatus

from service import constants
from service.redis import text
from service.store.workers import WorkerLeases
from workers.context import current
from workers.jobs import run_maintenance

log = structlog.get_logger(__name__)

SCHEDULER_LOCK_KEY = constants.KEY_PREFIX + "scheduler:lock"


def new_lease() -> str:
    """A name for this worker process's liveness and holding list: unique across hosts and
    restarts, readable in `tgwatch status`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Heartbeat:
    """Refreshes the worker's alive key from a thread, so a long job never lets it lapse; a
    Redis outage only makes the refresh fail until Redis is back."""

    def __init__(self, leases: WorkerLeases, lease: str) -> None:
        self.leases = leases
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tgwatch-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> bool:
        try:
            self.leases.heartbeat(self.lease, constants.WORKER_ALIVE_TTL_SECONDS)
        except redis.RedisError:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(constants.WORKER_HEARTBEAT_SECONDS):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(constants.WORKER_HEARTBEAT_SECONDS + 1)


class TgwatchWorker(SimpleWorker):
    """A SimpleWorker (each job runs in the worker process itself, no fork per job: the rules
    index, the analyzers, the Bot and the HTTP client stay warm) whose jobs always leave a trace."""

    def __init__(self, *args: Any, lease: str, **kwargs: Any) -> None:
        kwargs["maintenance_interval"] = constants.WORKER_TICK_SECONDS
        # RQ's registry entry of this worker outlives a tick by a margin, so `status` lists it
        # while it lives and drops it soon after it dies.
        kwargs.setdefault("worker_ttl", constants.WORKER_ALIVE_TTL_SECONDS)
        super().__init__(*args, **kwargs)
        self.lease = lease
        self.leases = WorkerLeases(self.connection)
        self._rq_maintained_at: float | None = None

    def subscribe(self) -> None:
        """No pubsub thread: tgwatch sends workers no RQ commands, and that thread blocks a
        stop for up to a minute (its listener sleeps 60 s) and reconnects on its own in an
        outage. Stopping is by signal; a stuck job ends at its timeout."""

    def unsubscribe(self) -> None:
        """Nothing to unsubscribe (see ``subscribe``)."""

    # --- taking jobs --------------------------------------------------------------------------
    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """The next job of the first non-empty queue (in order), moved into this worker's holding
        list as it is taken. Blocks until there is one, like RQ's own (``timeout`` only paces
        the waits); returns None when all queues are empty in burst mode (``timeout`` None) or
        after ``max_idle_time`` seconds without a job."""
        self.set_state(WorkerStatus.IDLE)
        keys = [queue.key for queue in self.queues]
        idle_until = None if max_idle_time is None else time.monotonic() + max_idle_time
        while True:
            self.heartbeat()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            found = self.leases.take(self.lease, keys)
            if found is None and timeout is None:
                return None  # burst: every queue is empty
            if found is None:
                # Block on the first queue (posts: the latency that matters); the others are
                # looked at again at least every WORKER_IDLE_WAIT_SECONDS.
                job_id = self.leases.wait_take(
                    self.lease, keys[0], constants.WORKER_IDLE_WAIT_SECONDS
                )
                found = None if job_id is None else (keys[0], job_id)
            if found is not None:
                taken = self._fetch(*found)
                if taken is not None:
                    return taken
            elif idle_until is not None and time.monotonic() >= idle_until:
                return None

    def _fetch(self, queue_key: str, job_id: str) -> tuple[Job, Queue] | None:
        queue = next(q for q in self.queues if q.key == queue_key)
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
        except Exception as exc:  # a job that cannot be read is dropped, with its reason
            log.error("job_unreadable", job_id=job_id, queue=queue.name, error=type(exc).__name__)
            self.leases.release(self.lease, job_id)
            return None
        return job, queue

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job; it leaves the holding list once RQ recorded its outcome (a worker that
        dies before that leaves it there, for recovery)."""
        super().execute_job(job, queue)
        self.leases.release(self.lease, job.id)

    # --- the tick -----------------------------------------------------------------------------
    def run_maintenance_tasks(self) -> None:
        try:
            recover_dead_workers(self.connection, self.lease, self.serializer)
            run_scheduler(self.connection, self.lease, self.queues, self.serializer)
            run_maintenance(current().delivery)
        except redis.RedisError:
            raise  # the worker loop rides the outage out
        except Exception as exc:  # a failed tick is retried on the next one
            log.warning("maintenance_failed", error=type(exc).__name__)
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


def recover_dead_workers(connection: redis.Redis, lease: str, serializer: Any = None) -> int:
    """Hand the held jobs of every dead worker back to their queues; returns how many.

    Each job is put at the front of its queue (it was taken first) and its stale execution
    entry is dropped from RQ's started registry, so RQ's own cleanup later does not run it a
    second time."""
    leases = WorkerLeases(connection)
    recovered = 0
    for dead in leases.dead_holders():
        if dead == lease:
            continue
        if not leases.lock_recovery(dead, lease, constants.WORKER_TICK_SECONDS * 5):
            continue
        for job_id in leases.take_held(dead, lease):
            requeue(connection, job_id, serializer)
            leases.release(lease, job_id)
            recovered += 1
            log.warning("job_recovered", job_id=job_id, dead_worker=dead)
    return recovered


def requeue(connection: redis.Redis, job_id: str, serializer: Any = None) -> None:
    """Put a job taken by a worker that died back at the front of its queue."""
    try:
        job = Job.fetch(job_id, connection=connection, serializer=serializer)
    except Exception:  # gone (expired, deleted): nothing to run again
        log.warning("job_not_recoverable", job_id=job_id)
        return
    queue = Queue(job.origin, connection=connection, serializer=serializer)
    started = StartedJobRegistry(queue=queue)
    members: list[Any] = connection.zrange(started.key, 0, -1)
    stale = [m for m in members if text(m).startswith(job_id + ":")]
    with connection.pipeline() as pipe:
        if stale:
            pipe.zrem(started.key, *stale)
        queue._enqueue_job(job, pipeline=pipe, at_front=True)
        pipe.execute()


def run_scheduler(
    connection: redis.Redis, lease: str, queues: list[Queue], serializer: Any = None
) -> int:
    """Enqueue the retries and delayed jobs that are due, under a lock this process holds for a
    few seconds (no orphan process can keep it); returns how many."""
    lock = connection.set(
        SCHEDULER_LOCK_KEY, lease, nx=True, px=int(constants.SCHEDULER_LOCK_SECONDS * 1000)
    )
    if not lock and text(connection.get(SCHEDULER_LOCK_KEY) or b"") != lease:
        return 0
    connection.pexpire(SCHEDULER_LOCK_KEY, int(constants.SCHEDULER_LOCK_SECONDS * 1000))
    moved = 0
    for queue in queues:
        registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]  # rq
        job_ids = registry.get_jobs_to_schedule(int(time.time()))
        if not job_ids:
            continue
        jobs = Job.fetch_many(job_ids, connection=connection, serializer=serializer)
        with connection.pipeline() as pipe:
            for job_id, job in zip(job_ids, jobs, strict=True):
                if job is not None:
                    queue._enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
                    moved += 1
                registry.remove(job_id, pipeline=pipe)
            pipe.execute()
    return moved
