"""The RQ entry points and the maintenance tick: payload decoding, lease recovery, flushes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from service.config import DeliverySettings, load_settings
from service.core.delivery import DeliveryJob, parse_target
from service.delivery_queue import FLUSH_DIGEST
from service.metrics import Metrics
from tests.delivery.conftest import make_alert
from workers import jobs
from workers.context import WorkerContext, install
from workers.delivery.context import DeliveryContext


@pytest.fixture
def context(redis_client: redis.Redis) -> Iterator[DeliveryContext]:
    metrics = Metrics()
    ctx = DeliveryContext.build(redis_client, DeliverySettings(lease_seconds=5), metrics)
    install(WorkerContext(load_settings(_env_file=None), redis_client, metrics, ctx))
    yield ctx
    install(None)
    ctx.close()


def test_invalid_payload_is_dead_lettered_not_raised(context: DeliveryContext) -> None:
    assert jobs.deliver({"alert": {"id": "x"}, "target": {"telegram": 1}}) == "invalid"
    [dead] = context.ledger.dead_letters()
    assert dead["reason"] == "invalid payload: KeyError"


def test_maintenance_enqueues_due_digest_flushes(context: DeliveryContext) -> None:
    job = DeliveryJob(make_alert(), parse_target({"telegram": -100123, "digest": "15m"}))
    context.digests.hold(job, datetime.now(UTC) - timedelta(seconds=1))
    assert jobs.run_maintenance(context) == {"flushes": 1}
    [queued] = context.queue.get_jobs()
    assert queued.func_name == FLUSH_DIGEST
    assert queued.args[0] == {"target": {"telegram": -100123}, "attempt": 0}
    assert jobs.run_maintenance(context) == {"flushes": 0}
