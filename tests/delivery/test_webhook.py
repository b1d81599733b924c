"""Webhook delivery to a real receiver on loopback that verifies every signature."""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from structlog.testing import capture_logs

from service import constants
from service.core.delivery import DeliveryJob, WebhookTarget, parse_target
from service.core.delivery import DeliveryStatus as oc  # noqa: N813 - short in tables of outcomes
from service.core.targets import TargetPolicy, address_refusal
from service.delivery_queue import enqueue_deliveries, redeliver
from service.store.deliveries import Ledger
from tests.delivery.conftest import SECRET, ContextFactory, Scheduled, make_alert
from tests.delivery.receiver import WebhookReceiver
from workers.delivery.dispatch import process


def _job(url: str, secret: str | list[str] = SECRET, index: int = 1) -> DeliveryJob:
    target = parse_target({"webhook": {"url": url, "secret": secret}})
    return DeliveryJob(make_alert(index), target, 0, "Lavrov watch")


async def test_failures_then_recovery_every_request_signed(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    receiver.fail_first = 2
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=(0.05, 0.1, 0.1))
    job = _job(receiver.url)
    with capture_logs() as logs:
        first = await process(context, job)
        assert first.status == oc.RETRY
        outcomes = await scheduled.run_all(context)
    assert [o.status for o in outcomes] == [oc.RETRY, oc.SENT]
    assert [r.status for r in receiver.received] == [500, 500, 204]
    assert all(r.verified for r in receiver.received)
    assert {r.webhook_id for r in receiver.received} == {job.alert.id}
    payload = receiver.delivered[0].payload
    assert payload["schema"] == "tgwatch.alert.v1"
    assert payload["id"] == job.alert.id
    assert payload["subscription"] == {"id": "lavrov", "name": "Lavrov watch"}
    assert receiver.received[0].headers["content-type"] == "application/json"

    entries = Ledger(redis_client).attempts(job.target)  # type: ignore[arg-type]
    assert [(e["attempt"], e["status"]) for e in entries] == [(2, 204), (1, 500), (0, 500)]
    assert entries[1]["error"] == "HTTP 500" and entries[0]["error"] is None
    assert all(isinstance(e["latency_ms"], int) for e in entries)

    # Delivered once: the same alert again sends nothing.
    assert (await process(context, job)).status == oc.ALREADY_SENT
    assert len(receiver.received) == 3
    everything = json.dumps(logs, default=str) + json.dumps(entries)
    assert SECRET not in everything and SECRET[6:] not in everything


async def test_rotation_receiver_knowing_only_the_new_secret(
    receiver: WebhookReceiver, make_context: ContextFactory
) -> None:
    receiver.secrets = ["brand-new-secret"]
    context = make_context(schedule=Scheduled())
    outcome = await process(context, _job(receiver.url, [SECRET, "brand-new-secret"]))
    assert outcome.status == oc.SENT
    signature = receiver.received[0].headers["webhook-signature"]
    assert len(signature.split(" ")) == 2 and all(s.startswith("v1,") for s in signature.split())


async def test_dead_letter_after_last_attempt_and_redelivery_keeps_webhook_id(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    receiver.fail_first = 1000
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=(0.02, 0.02))
    job = _job(receiver.url)
    await process(context, job)
    outcomes = await scheduled.run_all(context)
    assert [o.status for o in outcomes] == [oc.RETRY, oc.RETRY]
    assert len(receiver.received) == 3  # first attempt + one per scheduled delay
    dead = context.ledger.dead_letters()
    assert len(dead) == 1
    assert dead[0]["key"] == job.key and dead[0]["reason"] == "HTTP 500"
    assert dead[0]["job"]["attempt"] == 2

    # The endpoint is fixed; the operator redelivers the dead alert through the queue.
    receiver.fail_first = 0
    queue = Queue(constants.DELIVERIES_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert redeliver(context.ledger, queue, alert_id="al_unknown") == 0
    assert redeliver(context.ledger, queue, alert_id=job.alert.id) == 1
    assert context.ledger.dead_letters() == []
    [queued] = queue.get_jobs()
    assert SECRET not in (queued.description or "")
    again = DeliveryJob.from_dict(queued.args[0])
    assert again.attempt == 0
    assert (await process(context, again)).status == oc.SENT
    assert receiver.received[-1].status == 204 and receiver.received[-1].verified
    assert {r.webhook_id for r in receiver.received} == {job.alert.id}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_endpoint_is_a_logged_failed_attempt(
    make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=(30,))
    url = f"http://127.0.0.1:{_closed_port()}/hook?token=query-secret"
    job = _job(url)
    with capture_logs() as logs:
        outcome = await process(context, job)
    assert outcome.status == oc.RETRY
    [(retry, delay)] = scheduled.jobs
    assert retry.attempt == 1 and 30 <= delay <= 30 * 1.2
    [entry] = Ledger(redis_client).attempts(job.target)  # type: ignore[arg-type]
    assert entry["status"] is None and entry["error"].startswith("ConnectError")
    assert "query-secret" not in json.dumps(entry) + json.dumps(logs, default=str)
    assert SECRET not in json.dumps(logs, default=str)


async def test_private_and_loopback_targets_are_refused(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    context = make_context(schedule=Scheduled(), allow_loopback_targets=False)
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        job = _job(url)
        outcome = await process(context, job)
        assert outcome.status == oc.DEAD
        assert outcome.detail.startswith("refused: ") and "loopback address" in outcome.detail
        # The tenant's log says "refused", no status, no latency: no probing of a network.
        [entry] = context.ledger.attempts(job.target)  # type: ignore[arg-type]
        assert entry["error"] == "refused: target not allowed"
        assert entry["status"] is None and entry["latency_ms"] is None
    assert receiver.received == []
    assert [d["reason"] for d in context.ledger.dead_letters()] == [
        "refused: webhook host refused: loopback address"
    ] * 2


@pytest.mark.parametrize(
    ("address", "private", "loopback", "refused"),
    [
        ("8.8.8.8", False, False, None),
        ("2001:4860:4860::8888", False, False, None),
        ("10.1.2.3", False, False, "private or link-local address"),
        ("192.168.0.10", False, False, "private or link-local address"),
        ("172.16.5.4", False, False, "private or link-local address"),
        ("169.254.169.254", True, True, "cloud metadata address"),
        ("169.254.1.2", False, False, "private or link-local address"),
        ("fe80::1", False, False, "private or link-local address"),
        ("fd00::1", False, False, "private or link-local address"),
        ("100.64.0.1", False, False, "private or link-local address"),
        ("::ffff:10.0.0.1", False, False, "private or link-local address"),
        ("10.1.2.3", True, False, None),
        ("127.0.0.1", True, False, "loopback address"),
        ("::1", False, False, "loopback address"),
        ("127.0.0.1", False, True, None),
        ("0.0.0.0", True, True, "unroutable address"),
        ("224.0.0.1", True, True, "unroutable address"),
    ],
)
def test_address_policy(address: str, private: bool, loopback: bool, refused: str | None) -> None:
    assert address_refusal(address, TargetPolicy(private, loopback)) == refused


async def test_gone_endpoint_is_disabled(
    receiver: WebhookReceiver, make_context: ContextFactory
) -> None:
    receiver.status_ok = 410
    context = make_context(schedule=Scheduled())
    job = _job(receiver.url)
    assert (await process(context, job)).status == oc.DISABLED
    assert context.ledger.disabled(job.target.key) is not None
    assert (await process(context, _job(receiver.url, index=2))).status == oc.DISABLED
    assert len(receiver.received) == 1


def test_enqueue_deliveries_one_job_per_target(redis_client: redis.Redis) -> None:
    queue = Queue(constants.DELIVERIES_QUEUE, connection=redis_client, serializer=JSONSerializer)
    alert = make_alert()
    targets: list[dict[str, Any]] = [
        {"telegram": -1001234567890},
        {"webhook": {"url": "https://example.org/hook", "secret": SECRET}},
        {"webhook": {"url": "ftp://example.org/", "secret": SECRET}},  # invalid: skipped
        {"email": "nobody@example.org"},  # invalid: skipped
    ]
    with capture_logs() as logs:
        assert enqueue_deliveries(queue, alert, targets, subscription_name="Lavrov") == 2
    assert SECRET not in json.dumps(logs, default=str)
    jobs = queue.get_jobs()
    assert [j.func_name for j in jobs] == ["workers.jobs.deliver"] * 2
    decoded = [DeliveryJob.from_dict(j.args[0]) for j in jobs]
    assert [d.target.key for d in decoded] == ["tg:-1001234567890", decoded[1].target.key]
    assert isinstance(decoded[1].target, WebhookTarget)
    assert decoded[1].target.secrets == (SECRET,) and SECRET not in repr(decoded[1].target)
    assert all(SECRET not in (j.description or "") for j in jobs)
    assert all(d.alert == alert and d.subscription_name == "Lavrov" for d in decoded)

    suppressed = dataclasses.replace(make_alert(2), suppressed="edit")
    assert enqueue_deliveries(queue, suppressed, targets) == 0
