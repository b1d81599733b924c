"""The pipeline state that lives in Redis (queue depths, failed jobs, registered workers,
webhook dead letters), read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue, Worker
from rq.registry import FailedJobRegistry

from service.store.deliveries import Ledger

log = structlog.get_logger(__name__)


class RedisStateCollector(Collector):
    """Reads RQ queue lengths, failed registries, workers and dead letters when scraped.

    Values come from Redis, so every process that attaches it reports the same numbers; the
    dashboard and alerts aggregate them with ``max``. A Redis error never breaks /metrics: the
    collector reports ``tgwatch_redis_up 0`` and skips the rest.
    """

    def __init__(self, client: redis.Redis, queues: Sequence[str]) -> None:
        self.client = client
        self.queues = tuple(queues)
        self.ledger = Ledger(client)

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            "up": GaugeMetricFamily("tgwatch_redis_up", "1 if Redis answered this scrape."),
            "depth": GaugeMetricFamily(
                "tgwatch_queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"]
            ),
            "failed": GaugeMetricFamily(
                "tgwatch_jobs_failed", "Jobs in an RQ queue's failed registry.", labels=["queue"]
            ),
            "workers": GaugeMetricFamily("tgwatch_workers", "RQ workers registered in Redis."),
            "dead": GaugeMetricFamily(
                "tgwatch_webhook_dead_letters", "Deliveries waiting in the dead-letter list."
            ),
        }

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        try:
            depths = {name: Queue(name, connection=self.client).count for name in self.queues}
            failed = {
                name: FailedJobRegistry(name, connection=self.client).count for name in self.queues
            }
            workers = Worker.count(connection=self.client)
            dead = self.ledger.dead_letter_count()
        except redis.RedisError as exc:
            log.warning("metrics_redis_unavailable", error=type(exc).__name__)
            families["up"].add_metric([], 0)
            return [families["up"]]
        families["up"].add_metric([], 1)
        for name in self.queues:
            families["depth"].add_metric([name], depths[name])
            families["failed"].add_metric([name], failed[name])
        families["workers"].add_metric([], workers)
        families["dead"].add_metric([], dead)
        return list(families.values())
