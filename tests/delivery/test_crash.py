"""A delivery worker killed mid-delivery loses nothing, and the alert arrives exactly once.

Recovery here is tgwatch's own (workers/worker.py), not RQ's abandoned-job handling: the job
sits in the worker's holding list while it runs; once the dead worker's alive key lapses, a live
worker's tick puts the job back on its queue, the dead worker's claim is taken over, and the
sent marker makes the second run the only completed delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service import constants
from service.core.delivery import DeliveryJob, parse_target
from service.delivery_queue import enqueue_deliveries
from service.store.deliveries import Ledger
from service.store.workers import WorkerLeases
from tests.delivery.conftest import SECRET, make_alert
from tests.delivery.receiver import WebhookReceiver

# Real `tgwatch` processes: left out of `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3


class Workers:
    """Delivery worker subprocesses, each in its own process group (RQ may fork a scheduler)."""

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "TGWATCH_REDIS_URL": redis_url,
            "TGWATCH_DATA_DIR": str(data_dir),
            "TGWATCH_LOG_FORMAT": "json",
            "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
            "TGWATCH_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
            "TGWATCH_DELIVERY_WEBHOOK_TIMEOUT": "2",
            "PYTHONPATH": str(ROOT),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--queue", constants.DELIVERIES_QUEUE],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes:
            self.kill(process, signal.SIGTERM)
            # A group member (RQ's scheduler) may outlive the worker; end the group for good.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(redis_url, tmp_path)
    yield pool
    pool.stop_all()


async def test_worker_killed_mid_delivery_loses_nothing(
    workers: Workers, redis_client: redis.Redis
) -> None:
    receiver = WebhookReceiver(secrets=[SECRET], hold_first=60)  # holds the first request
    await receiver.start()
    try:
        queue = Queue(constants.DELIVERIES_QUEUE, connection=redis_client,
                      serializer=JSONSerializer)  # fmt: skip
        alert = make_alert()
        target: dict[str, Any] = {"webhook": {"url": receiver.url, "secret": SECRET}}
        assert enqueue_deliveries(queue, alert, [target], subscription_name="Lavrov") == 1

        first = workers.start()
        await asyncio.wait_for(receiver.got_request.wait(), 30)
        leases = WorkerLeases(redis_client)
        assert held(leases) == 1  # the running delivery is in its worker's holding list
        workers.kill(first)  # SIGKILL while the receiver still holds the request
        assert len(StartedJobRegistry(queue=queue)) == 1  # RQ sees an abandoned job
        assert queue.count == 0
        ledger = Ledger(redis_client)
        job_key = DeliveryJob(alert, parse_target(target)).key
        assert ledger.sent(job_key) is None

        killed_at = time.monotonic()
        workers.start()
        await asyncio.wait_for(receiver.got_delivery.wait(), 60)
        # Recovered within the bound: the dead worker's alive key lapses (15 s), the next tick of
        # a live worker (2 s) hands the job back — 30 s with room for a loaded machine's start.
        assert time.monotonic() - killed_at < 45
        # Settled: released from the holding list and marked sent, so no copy can run again.
        async with asyncio.timeout(60):
            while held(leases) or ledger.sent(job_key) is None:  # noqa: ASYNC110 - Redis state
                await asyncio.sleep(0.05)
        assert len(receiver.delivered) == 1
        assert [r.answered for r in receiver.received] == [False, True]
        assert {r.webhook_id for r in receiver.received} == {alert.id}
        assert all(r.verified for r in receiver.received)
        assert held(leases) == 0
        assert ledger.sent(job_key) == "1"
        assert ledger.dead_letters() == []
    finally:
        await receiver.stop()


def held(leases: WorkerLeases) -> int:
    """Jobs in every worker's holding list."""
    return sum(len(leases.held(lease)) for lease in leases.holders())
