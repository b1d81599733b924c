"""The delivery worker's composition root: settings, logging, Redis, context, RQ worker.

Run it with ``python -m workers.delivery [--burst]``. It serves the deliveries queue with a
non-forking RQ worker whose maintenance tick (every ``TGWATCH_DELIVERY_RECOVERY_INTERVAL``
seconds, also at start) re-enqueues deliveries of dead workers and due digest flushes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
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
from service.redis import connect
from workers.delivery.context import DeliveryContext, get_context, set_context
from workers.delivery.jobs import run_maintenance
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger(__name__)


class DeliveryWorker(SimpleWorker):
    """A SimpleWorker (jobs run in-process: the Bot and HTTP client stay warm) whose maintenance
    tick also runs delivery recovery; RQ's own registry cleaning keeps its ten-minute pace."""

    def __init__(self, *args: Any, recovery_interval: int, **kwargs: Any) -> None:
        # RQ blocks on the queue for worker_ttl - 15 s between ticks: keep that short.
        kwargs.setdefault("worker_ttl", recovery_interval + 15)
        kwargs["maintenance_interval"] = recovery_interval
        super().__init__(*args, **kwargs)
        self._rq_maintained_at: float | None = None

    def run_maintenance_tasks(self) -> None:
        try:
            run_maintenance(get_context())
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


def build_delivery_worker(
    settings: Settings,
    connection: redis.Redis,
    *,
    delivery: DeliverySettings | None = None,
    queues: Sequence[str] = (constants.DELIVERIES_QUEUE,),
    name: str | None = None,
) -> DeliveryWorker:
    """Install the delivery context of this process and return the worker serving it."""
    config = delivery or DeliverySettings()
    set_context(DeliveryContext.from_settings(settings, connection, config))
    return DeliveryWorker(
        list(queues),
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        recovery_interval=config.recovery_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.delivery", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    handle = connect(settings.redis_url, settings.data_dir)
    worker = build_delivery_worker(settings, handle.client)
    log.info("delivery_worker_started", name=worker.name, burst=args.burst)
    try:
        worker.work(burst=args.burst, with_scheduler=not args.burst, logging_level="WARNING")
    finally:
        get_context().close()
        set_context(None)
        handle.close()
    return 0
