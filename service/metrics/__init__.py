"""Every Prometheus metric tgwatch exports, on an explicit registry built once per process.

Each process's composition root builds one ``Metrics`` and hands it down; nothing here creates a
metric at import time. Counters and histograms are updated in-process by the component that sees
the event; the state that lives in Redis (queue depths, failed jobs, registered workers, webhook
dead letters) is read at scrape time by ``RedisStateCollector``.

Label values stay bounded: ``channel`` is one of the configured (or bot-administered) channels,
``source``/``step``/``outcome``/``target``/``kind`` are short fixed codes, and ``reason`` is a
short code chosen by the caller (never an exception message). The values of ``outcome`` and
``kind`` come from the core's enums and are mapped to labels here, in one place
(``DELIVERY_OUTCOME_LABELS``, ``alert_outcome``): the dashboard and the alert rules query
exactly these. As a last guard, each label keeps
at most ``LABEL_VALUES_MAX`` distinct values per metric; later values are folded into ``other``.

Processes: RQ workers do not fork per job, so each worker process keeps its own registry and
serves its own endpoint (``worker_port``). Setting ``PROMETHEUS_MULTIPROC_DIR`` (before
prometheus_client is imported) switches to prometheus_client's multiprocess mode instead: every
process writes its values to files there and any process's endpoint serves the aggregate.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata

import redis
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    multiprocess,
)

from service import constants
from service.core.delivery import DeliveryStatus
from service.core.model import SUPPRESSION_REASONS, Alert
from service.core.rules import SUBSCRIPTION_KINDS
from service.metrics.mtproto import MtprotoMetrics
from service.metrics.redis_state import RedisStateCollector

log = structlog.get_logger(__name__)

# Known label values; series for them exist (at 0) from start-up so rate() and the dashboard work
# before the first event.
STAGE_STEPS = ("parse", "enrich", "match", "store", "alert")
ALERT_OUTCOMES = ("alert", *(f"suppressed_{reason}" for reason in SUPPRESSION_REASONS))
DELIVERY_TARGETS = ("telegram", "webhook")
# What one delivery attempt came to, as the ``outcome`` label of tgwatch_deliveries_total:
# ``failed`` will be retried, ``dead_letter`` was given up (TgwatchDeliveryFailureRatio counts
# both); a rate-limit wait or a copy in flight is ``deferred``; a repeat of a sent alert
# ``skipped``.
DELIVERY_OUTCOME_LABELS: dict[DeliveryStatus, str] = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.RETRY: "failed",
    DeliveryStatus.DEAD: "dead_letter",
    DeliveryStatus.DEFERRED: "deferred",
    DeliveryStatus.IN_FLIGHT: "deferred",
    DeliveryStatus.HELD: "held",
    DeliveryStatus.DISABLED: "disabled",
    DeliveryStatus.ALREADY_SENT: "skipped",
}
DELIVERY_OUTCOMES = tuple(dict.fromkeys(DELIVERY_OUTCOME_LABELS.values()))
MATCH_KINDS = SUBSCRIPTION_KINDS
# Distinct values one label of one metric may take before new ones are folded into "other": a
# typo'd caller passing an id or a message as a label must not blow up Prometheus' memory.
LABEL_VALUES_MAX = 500
OTHER = "other"

# Buckets, in seconds, per kind of duration.
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Post date -> delivered: seconds for live posts, hours for a backfill or a replayed export.
END_TO_END_BUCKETS = (
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
    43200.0, 86400.0,
)  # fmt: skip
# Post handed to the queue -> its alerts decided and recorded: tens of milliseconds when workers
# keep up, seconds to minutes behind a backlog.
DECISION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
)  # fmt: skip
# Why a worker set a subscription aside (the ``reason`` label of tgwatch_subscriptions_set_aside).
SET_ASIDE_REASONS = ("over_budget",)
COMPILE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def alert_outcome(alert: Alert) -> str:
    """The ``outcome`` label of an alert decision."""
    return "alert" if alert.suppressed is None else f"suppressed_{alert.suppressed}"


def package_version() -> str:
    try:
        return metadata.version("tgwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def worker_port(base_port: int, index: int) -> int:
    """The ops port of worker ``index`` (0-based) of a process group; 0 (disabled) stays 0."""
    return 0 if base_port == 0 else base_port + index


class Metrics:
    """The metrics of one process. Attributes are the raw metrics; methods are the usual calls."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.multiproc_dir: str | None = env.get(MULTIPROC_ENV) or None
        self.registry = registry if registry is not None else CollectorRegistry()
        self._seen_labels: dict[tuple[str, str], set[str]] = {}
        r = self.registry

        # --- sources ---------------------------------------------------------------------------
        self.posts_seen = Counter(
            "tgwatch_posts_seen",
            "Posts a source saw (before dedupe).",
            ["source", "channel"],
            registry=r,
        )
        self.posts_enqueued = Counter(
            "tgwatch_posts_enqueued",
            "Post versions put on the posts queue.",
            ["source", "channel"],
            registry=r,
        )
        self.posts_duplicate = Counter(
            "tgwatch_posts_duplicate",
            "Posts not enqueued: that version was already seen.",
            ["source"],
            registry=r,
        )
        self.source_errors = Counter(
            "tgwatch_source_errors",
            "Errors of a source by short reason code.",
            ["source", "reason"],
            registry=r,
        )
        self.rejected = Counter(
            "tgwatch_rejected",
            "Malformed input items set aside.",
            ["source", "reason"],
            registry=r,
        )
        self.source_lag = Gauge(
            "tgwatch_source_lag_seconds",
            "Now minus the newest post's date, per channel.",
            ["channel"],
            registry=r,
            multiprocess_mode="max",
        )
        self.poll_duration = Histogram(
            "tgwatch_poll_duration_seconds",
            "Duration of one poll of a channel's preview page.",
            ["channel"],
            buckets=POLL_BUCKETS,
            registry=r,
        )
        # --- pipeline --------------------------------------------------------------------------
        self.stage_duration = Histogram(
            "tgwatch_stage_duration_seconds",
            "Duration of one step of the post stage, per post.",
            ["step"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.posts_processed = Counter(
            "tgwatch_posts_processed", "Posts the workers' post stage finished.", registry=r
        )
        self.matches = Counter(
            "tgwatch_matches", "Rule matches by subscription kind.", ["kind"], registry=r
        )
        self.alerts = Counter(
            "tgwatch_alerts", "Alert decisions by outcome.", ["outcome"], registry=r
        )
        self.decision_latency = Histogram(
            "tgwatch_decision_latency_seconds",
            "Post version handed to the posts queue to its alerts decided and recorded.",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.set_aside = Counter(
            "tgwatch_subscriptions_set_aside",
            "Subscriptions a worker paused because matching them cost too much.",
            ["reason"],
            registry=r,
        )
        # --- delivery --------------------------------------------------------------------------
        self.deliveries = Counter(
            "tgwatch_deliveries",
            "Delivery attempts by target kind and outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "tgwatch_delivery_latency_seconds",
            "Duration of one send to a target.",
            ["target"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "tgwatch_end_to_end_latency_seconds",
            "Post date to alert delivered.",
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.telegram_429 = Counter(
            "tgwatch_telegram_429", "Telegram 'Too Many Requests' answers.", registry=r
        )
        self.telegram_wait = Counter(
            "tgwatch_telegram_wait_seconds",
            "Seconds waited on Telegram's retry_after.",
            registry=r,
        )
        # Not tgwatch_webhook_dead_letters_total: its family name would equal the gauge's
        # (tgwatch_webhook_dead_letters, read from Redis), which OpenMetrics scrapes reject.
        self.dead_lettered = Counter(
            "tgwatch_webhook_dead_lettered",
            "Webhook deliveries given up and dead-lettered.",
            registry=r,
        )
        self.process_restarts = Counter(
            "tgwatch_process_restarts",
            "Child processes a supervisor restarted after they died.",
            ["role"],
            registry=r,
        )
        # --- rules -----------------------------------------------------------------------------
        self.subscriptions = Gauge(
            "tgwatch_subscriptions",
            "Active subscriptions.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rules_compiled = Gauge(
            "tgwatch_rules_compiled",
            "Rules in the compiled index.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.index_compile = Histogram(
            "tgwatch_index_compile_seconds",
            "Time to compile the rule index.",
            buckets=COMPILE_BUCKETS,
            registry=r,
        )
        self.build_info = Gauge(
            "tgwatch_build_info",
            "Always 1; labels say what runs.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(package_version(), platform.python_version()).set(1)

        for step in STAGE_STEPS:
            self.stage_duration.labels(step)
        for outcome in ALERT_OUTCOMES:
            self.alerts.labels(outcome)
        for kind in MATCH_KINDS:
            self.matches.labels(kind)
        self.process_restarts.labels("worker")
        for reason in SET_ASIDE_REASONS:
            self.set_aside.labels(reason)
        for target in DELIVERY_TARGETS:
            self.delivery_latency.labels(target)
            for delivery_outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(target, delivery_outcome)
        if self.multiproc_dir is None and registry is None:
            # Process metrics only make sense per process; multiprocess mode cannot merge them.
            ProcessCollector(registry=r)
            GCCollector(registry=r)
        self._redis_collector: RedisStateCollector | None = None
        self.mtproto = MtprotoMetrics(r, self.bounded, self.set_source_lag)

    # --- exposition ----------------------------------------------------------------------------
    def exposition_registry(self) -> CollectorRegistry:
        """What /metrics serves: this registry, or in multiprocess mode every process's files."""
        if self.multiproc_dir is None:
            return self.registry
        merged = CollectorRegistry()
        # prometheus_client leaves this constructor unannotated.
        multiprocess.MultiProcessCollector(merged, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        if self._redis_collector is not None:
            merged.register(self._redis_collector)
        return merged

    def attach_redis(
        self,
        client: redis.Redis,
        queues: Sequence[str] = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE),
    ) -> RedisStateCollector:
        """Export the queue depths, failed jobs, workers and dead letters read at scrape time."""
        if self._redis_collector is not None:
            return self._redis_collector
        collector = RedisStateCollector(client, queues)
        self.registry.register(collector)
        self._redis_collector = collector
        return collector

    # --- label guard ---------------------------------------------------------------------------
    def bounded(self, metric: str, label: str, value: str) -> str:
        """``value``, or ``other`` once this label already took ``LABEL_VALUES_MAX`` values."""
        seen = self._seen_labels.setdefault((metric, label), set())
        if value in seen:
            return value
        if len(seen) >= LABEL_VALUES_MAX:
            return OTHER
        seen.add(value)
        return value

    # --- sources -------------------------------------------------------------------------------
    def register_channels(self, source: str, channels: Iterable[str]) -> None:
        """Create the per-channel series of a source at 0, from its configured channels."""
        for name in channels:
            channel = self.bounded("posts", "channel", name)
            self.posts_seen.labels(source, channel)
            self.posts_enqueued.labels(source, channel)
        self.posts_duplicate.labels(source)

    def post_seen(self, source: str, channel: str, count: int = 1) -> None:
        self.posts_seen.labels(source, self.bounded("posts", "channel", channel)).inc(count)

    def post_enqueued(self, source: str, channel: str, count: int = 1) -> None:
        self.posts_enqueued.labels(source, self.bounded("posts", "channel", channel)).inc(count)

    def post_duplicate(self, source: str, count: int = 1) -> None:
        self.posts_duplicate.labels(source).inc(count)

    def source_error(self, source: str, reason: str) -> None:
        """``reason`` is a short code (``http_429``, ``http_5xx``, ``network``, ``parse``...)."""
        self.source_errors.labels(source, self.bounded("source_errors", "reason", reason)).inc()

    def reject(self, source: str, reason: str, count: int = 1) -> None:
        self.rejected.labels(source, self.bounded("rejected", "reason", reason)).inc(count)

    def set_source_lag(
        self, channel: str, newest_post_date: datetime, now: datetime | None = None
    ) -> None:
        now = now or datetime.now(UTC)
        lag = max(0.0, (now - newest_post_date).total_seconds())
        self.source_lag.labels(self.bounded("lag", "channel", channel)).set(lag)

    @contextmanager
    def poll_timer(self, channel: str) -> Iterator[None]:
        with self.poll_duration.labels(self.bounded("poll", "channel", channel)).time():
            yield

    # --- pipeline ------------------------------------------------------------------------------
    @contextmanager
    def stage_timer(self, step: str) -> Iterator[None]:
        """Time one step (``parse``, ``enrich``, ``match``, ``store``, ``alert``) of one post."""
        with self.stage_duration.labels(self.bounded("stage", "step", step)).time():
            yield

    def observe_stage(self, step: str, seconds: float) -> None:
        self.stage_duration.labels(self.bounded("stage", "step", step)).observe(seconds)

    @contextmanager
    def batch_timer(self, step: str, posts: int) -> Iterator[None]:
        """Time one step done for a batch of ``posts`` at once (a Redis round trip): each post
        is observed with its share."""
        started = time.perf_counter()
        try:
            yield
        finally:
            if posts > 0:
                share = (time.perf_counter() - started) / posts
                histogram = self.stage_duration.labels(self.bounded("stage", "step", step))
                for _ in range(posts):
                    histogram.observe(share)

    def alert_decided(self, seconds: float) -> None:
        """A post version's alerts were decided and recorded ``seconds`` after it was handed to
        the posts queue."""
        self.decision_latency.observe(max(0.0, seconds))

    def subscriptions_set_aside(self, reason: str, count: int = 1) -> None:
        self.set_aside.labels(self.bounded("set_aside", "reason", reason)).inc(count)

    def post_processed(self, count: int = 1) -> None:
        self.posts_processed.inc(count)

    def match(self, kind: str, count: int = 1) -> None:
        self.matches.labels(self.bounded("matches", "kind", kind)).inc(count)

    def alert(self, alert: Alert) -> None:
        """One alert decision: ``alert``, or ``suppressed_<reason>``."""
        self.alerts.labels(alert_outcome(alert)).inc()

    # --- delivery ------------------------------------------------------------------------------
    def delivery(self, target: str, status: DeliveryStatus, seconds: float | None = None) -> None:
        """One attempt to ``telegram``/``webhook`` and what it came to (after settling: a
        failed attempt that used up its schedule is ``DEAD``)."""
        target = self.bounded("deliveries", "target", target)
        self.deliveries.labels(target, DELIVERY_OUTCOME_LABELS[status]).inc()
        if seconds is not None:
            self.delivery_latency.labels(target).observe(seconds)
        if status == DeliveryStatus.DEAD and target == "webhook":
            self.dead_lettered.inc()

    def delivered(self, alert: Alert, now: datetime | None = None) -> None:
        """An alert reached its target: post date to now."""
        try:
            post_date = datetime.fromisoformat(str(alert.post["date"]))
        except (KeyError, TypeError, ValueError):
            return
        if post_date.tzinfo is None:
            post_date = post_date.replace(tzinfo=UTC)
        now = now or datetime.now(UTC)
        self.end_to_end_latency.observe(max(0.0, (now - post_date).total_seconds()))

    def telegram_rate_limited(self, retry_after: float) -> None:
        self.telegram_429.inc()
        self.telegram_wait.inc(max(0.0, retry_after))

    def process_restarted(self, role: str) -> None:
        self.process_restarts.labels(self.bounded("restarts", "role", role)).inc()

    # --- rules ---------------------------------------------------------------------------------
    def set_rules(self, subscriptions: int, rules_compiled: int, compile_seconds: float) -> None:
        self.subscriptions.set(subscriptions)
        self.rules_compiled.set(rules_compiled)
        self.index_compile.observe(compile_seconds)

    @contextmanager
    def index_compile_timer(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.index_compile.observe(time.perf_counter() - start)
