"""The metrics: helpers update the right series; the Redis collector reads real RQ state."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from rq import Queue, SimpleWorker

from service import constants, metrics
from service.core.delivery import DeliveryStatus
from service.core.model import Alert
from service.metrics import Metrics
from service.ops import ops_ports
from service.store.deliveries import Ledger

ROOT = Path(__file__).resolve().parents[2]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.post_processed()
    assert value(first, "tgwatch_posts_processed_total") == 1
    assert value(second, "tgwatch_posts_processed_total") == 0


def test_an_explicit_registry_is_used() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.post_processed(3)
    assert registry.get_sample_value("tgwatch_posts_processed_total") == 3


def test_source_counters() -> None:
    m = Metrics()
    m.post_seen("preview", "durov")
    m.post_seen("preview", "durov", 2)
    m.post_enqueued("preview", "durov")
    m.post_duplicate("bot")
    m.source_error("preview", "http_429")
    m.reject("file", "bad_date", 4)
    assert value(m, "tgwatch_posts_seen_total", source="preview", channel="durov") == 3
    assert value(m, "tgwatch_posts_enqueued_total", source="preview", channel="durov") == 1
    assert value(m, "tgwatch_posts_duplicate_total", source="bot") == 1
    assert value(m, "tgwatch_source_errors_total", source="preview", reason="http_429") == 1
    assert value(m, "tgwatch_rejected_total", source="file", reason="bad_date") == 4


def test_registered_channels_exist_at_zero() -> None:
    m = Metrics()
    m.register_channels("preview", ["a", "b"])
    assert value(m, "tgwatch_posts_seen_total", source="preview", channel="b") == 0
    assert value(m, "tgwatch_posts_enqueued_total", source="preview", channel="a") == 0
    assert value(m, "tgwatch_posts_duplicate_total", source="preview") == 0


def test_source_lag_and_poll_duration() -> None:
    m = Metrics()
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    m.set_source_lag("durov", now - timedelta(minutes=5), now=now)
    assert value(m, "tgwatch_source_lag_seconds", channel="durov") == 300
    m.set_source_lag("durov", now + timedelta(seconds=3), now=now)  # clock skew: never negative
    assert value(m, "tgwatch_source_lag_seconds", channel="durov") == 0
    with m.poll_timer("durov"):
        pass
    assert value(m, "tgwatch_poll_duration_seconds_count", channel="durov") == 1


def test_pipeline_metrics() -> None:
    m = Metrics()
    with m.stage_timer("parse"):
        pass
    m.observe_stage("match", 0.003)
    m.match("keyword", 2)
    post = {
        "channel": "c",
        "message_id": 1,
        "content_hash": "h",
        "date": "2024-05-01T10:00:00+00:00",
    }
    m.alert(Alert("s", post))
    m.alert(Alert("s", post, suppressed="edit"))
    assert value(m, "tgwatch_stage_duration_seconds_count", step="parse") == 1
    assert value(m, "tgwatch_stage_duration_seconds_bucket", step="match", le="0.005") == 1
    assert value(m, "tgwatch_stage_duration_seconds_bucket", step="match", le="0.0025") == 0
    assert value(m, "tgwatch_matches_total", kind="keyword") == 2
    assert value(m, "tgwatch_alerts_total", outcome="alert") == 1
    assert value(m, "tgwatch_alerts_total", outcome="suppressed_edit") == 1


def test_known_label_values_exist_at_zero() -> None:
    m = Metrics()
    for step in metrics.STAGE_STEPS:
        assert value(m, "tgwatch_stage_duration_seconds_count", step=step) == 0
    for outcome in metrics.ALERT_OUTCOMES:
        assert value(m, "tgwatch_alerts_total", outcome=outcome) == 0
    assert value(m, "tgwatch_deliveries_total", target="webhook", outcome="failed") == 0
    build = {"version": metrics.package_version(), "python": sys.version.split()[0]}
    assert m.registry.get_sample_value("tgwatch_build_info", build) == 1


def test_delivery_metrics() -> None:
    m = Metrics()
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    m.delivery("telegram", DeliveryStatus.SENT, seconds=0.2)
    m.delivery("webhook", DeliveryStatus.RETRY)
    m.delivery("webhook", DeliveryStatus.DEAD)
    post = {"channel": "c", "message_id": 1, "content_hash": "h",
            "date": (now - timedelta(hours=2)).isoformat()}  # fmt: skip
    m.delivered(Alert("s", post), now=now)
    m.telegram_rate_limited(retry_after=7)
    m.telegram_rate_limited(retry_after=3)
    assert value(m, "tgwatch_deliveries_total", target="telegram", outcome="sent") == 1
    assert value(m, "tgwatch_deliveries_total", target="webhook", outcome="failed") == 1
    assert value(m, "tgwatch_deliveries_total", target="webhook", outcome="dead_letter") == 1
    assert value(m, "tgwatch_delivery_latency_seconds_count", target="telegram") == 1
    assert value(m, "tgwatch_delivery_latency_seconds_count", target="webhook") == 0
    assert value(m, "tgwatch_end_to_end_latency_seconds_bucket", le="3600.0") == 0
    assert value(m, "tgwatch_end_to_end_latency_seconds_bucket", le="7200.0") == 1
    assert value(m, "tgwatch_telegram_429_total") == 2
    assert value(m, "tgwatch_telegram_wait_seconds_total") == 10
    assert value(m, "tgwatch_webhook_dead_lettered_total") == 1


def test_rule_gauges() -> None:
    m = Metrics()
    m.set_rules(subscriptions=12, rules_compiled=30, compile_seconds=0.02)
    with m.index_compile_timer():
        pass
    assert value(m, "tgwatch_subscriptions") == 12
    assert value(m, "tgwatch_rules_compiled") == 30
    assert value(m, "tgwatch_index_compile_seconds_count") == 2


def test_label_values_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "LABEL_VALUES_MAX", 2)
    m = Metrics()
    for channel in ("a", "b", "c", "d", "a"):
        m.post_seen("preview", channel)
    assert value(m, "tgwatch_posts_seen_total", source="preview", channel="a") == 2
    assert value(m, "tgwatch_posts_seen_total", source="preview", channel="c") is None
    assert value(m, "tgwatch_posts_seen_total", source="preview", channel="other") == 2


def test_ops_ports_never_collide() -> None:
    """`run -w 2` with a metrics port: listeners on it, workers after it (issue 9)."""
    listener, workers = ops_ports(9100, 2, listener=True)
    assert (listener, workers) == (9100, [9101, 9102])
    assert len({listener, *workers}) == 3
    assert ops_ports(9100, 3, listener=False) == (0, [9100, 9101, 9102])
    assert ops_ports(0, 2, listener=True) == (0, [0, 0])


# --- the Redis collector, on a real Redis -------------------------------------------------------
def test_collector_reads_real_queue_state(redis_client: redis.Redis) -> None:
    posts = Queue(constants.POSTS_QUEUE, connection=redis_client)
    deliveries = Queue(constants.DELIVERIES_QUEUE, connection=redis_client)
    for n in range(3):
        posts.enqueue(operator.add, n, 1)
    deliveries.enqueue(operator.add, 1, 1)
    # One job that really fails in a real (non-forking) worker lands in the failed registry.
    failing = Queue("tgwatch-test-failing", connection=redis_client)
    failing.enqueue(operator.truediv, 1, 0)
    SimpleWorker([failing], connection=redis_client).work(burst=True)
    ledger = Ledger(redis_client)
    ledger.dead_letter({"alert": {}}, "gone")
    ledger.dead_letter({"alert": {}}, "gone")

    m = Metrics()
    m.attach_redis(
        redis_client,
        queues=(constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE, "tgwatch-test-failing"),
    )
    assert value(m, "tgwatch_redis_up") == 1
    assert value(m, "tgwatch_queue_depth", queue=constants.POSTS_QUEUE) == 3
    assert value(m, "tgwatch_queue_depth", queue=constants.DELIVERIES_QUEUE) == 1
    assert value(m, "tgwatch_queue_depth", queue="tgwatch-test-failing") == 0
    assert value(m, "tgwatch_jobs_failed", queue="tgwatch-test-failing") == 1
    assert value(m, "tgwatch_jobs_failed", queue=constants.POSTS_QUEUE) == 0
    assert value(m, "tgwatch_webhook_dead_letters") == 2
    assert value(m, "tgwatch_workers") == 0

    worker = SimpleWorker([posts], connection=redis_client)
    worker.register_birth()
    try:
        assert value(m, "tgwatch_workers") == 1
    finally:
        worker.register_death()
    # The collector reads at scrape time: new jobs show on the next read.
    posts.enqueue(operator.add, 1, 2)
    assert value(m, "tgwatch_queue_depth", queue=constants.POSTS_QUEUE) == 4


def test_collector_survives_redis_down(dead_redis: redis.Redis) -> None:
    m = Metrics()
    m.attach_redis(dead_redis)
    text = generate_latest(m.registry).decode()
    assert "tgwatch_redis_up 0.0" in text
    assert value(m, "tgwatch_queue_depth", queue=constants.POSTS_QUEUE) is None
    assert value(m, "tgwatch_posts_processed_total") == 0


# --- multiprocess mode --------------------------------------------------------------------------
_CHILD = """
import json, sys
from prometheus_client import generate_latest
from service.metrics import Metrics
from service.store.deliveries import Ledger
m = Metrics()
m.post_processed(int(sys.argv[1]))
m.post_seen("preview", "durov")
if sys.argv[2] == "report":
    print(generate_latest(m.exposition_registry()).decode())
"""


def test_multiprocess_mode_sums_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def child(count: int, mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(count), mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    child(2, "quiet")
    text = child(3, "report")
    assert "tgwatch_posts_processed_total 5.0" in text, text
    assert 'tgwatch_posts_seen_total{channel="durov",source="preview"} 2.0' in text
    assert json.dumps("process_cpu_seconds_total") not in text
