"""The post stage: every post version goes through here — enrich, match, alert, store.

This is the single place where enrichment, matching and alerting plug in. It is synchronous
and takes its clients from the worker's post-stage context, so it runs the same in a worker
and in tests.

A retried batch must neither lose nor repeat an alert. So the version is stored *last* (a
stored version is a finished one and is skipped), the alerts decided for a version are kept
for a day and reused by a retry instead of being decided again (the match state would by then
call them edits), and handing alerts to delivery is idempotent (the alert id is derived from the
subscription and the post version; deliveries are claimed per alert and target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from service.core import alerting
from service.core.model import Alert, Enrichment
from service.core.post import Post
from service.delivery_queue import enqueue_deliveries
from service.queue import confirm_seen
from workers.context import PostStage

log = structlog.get_logger(__name__)


@dataclass
class StageReport:
    """What one batch did: counts for logs, metrics and tests."""

    received: int = 0
    stored: int = 0
    already_stored: int = 0
    matches: int = 0
    alerts: int = 0
    suppressed: int = 0
    deliveries: int = 0
    errors: list[str] = field(default_factory=list)


def _decide(
    context: PostStage, post: Post, enrichment: Enrichment, saved: list[Alert] | None
) -> list[Alert]:
    """Match the post and apply the alert rules, or reuse what a failed attempt decided."""
    if saved is not None:
        return saved
    metrics = context.metrics
    with metrics.stage_timer("match"):
        now = context.clock()
        index = context.rules.current()
        matches = index.match(post, enrichment, now)
    with metrics.stage_timer("alert"):
        alerts = alerting.process(
            post, matches, context.match_state, enrichment=enrichment, now=now
        )
    return alerts


def _deliver(context: PostStage, alerts: list[Alert], report: StageReport) -> None:
    metrics = context.metrics
    kinds = context.rules.kinds
    for alert in alerts:
        metrics.match(kinds.get(alert.subscription_id, "keyword"))
        metrics.alert(alert)
        report.matches += 1
        if alert.suppressed is not None:
            report.suppressed += 1
            continue
        report.alerts += 1
        subscription = context.rules.subscriptions.get(alert.subscription_id)
        # The owner's own alert stream (GET /v1/alerts reads it in one call); once per alert.
        context.match_state.index_owner_alert(alert, subscription.owner if subscription else None)
        if subscription is None:
            # Deleted since the alert was decided (a retried batch reuses its decisions).
            log.warning("alert_subscription_gone", subscription=alert.subscription_id)
            continue
        if not subscription.notify:
            continue
        report.deliveries += enqueue_deliveries(
            context.deliveries,
            alert,
            [dict(target) for target in subscription.notify],
            subscription_name=subscription.name,
        )


def process_post(
    context: PostStage,
    post: Post,
    report: StageReport,
    *,
    stored: bool = False,
    saved: list[Alert] | None = None,
) -> None:
    """Enrich, match, alert and store one post version. ``stored`` (this version is already
    stored: skip it) and ``saved`` (alerts a failed attempt decided) are read for a whole batch
    at once by ``process_posts``."""
    if stored:
        report.already_stored += 1
        return
    structlog.contextvars.bind_contextvars(post=post.version_key)
    with context.metrics.stage_timer("enrich"):
        enrichment = context.enricher.enrich(post)
    alerts = _decide(context, post, enrichment, saved)
    _deliver(context, alerts, report)
    with context.metrics.stage_timer("store"):
        seq = context.posts.store(post, enrichment)
    if seq > 0:
        report.stored += 1
    else:
        report.already_stored += 1


def process_posts(context: PostStage, posts: list[Post]) -> StageReport:
    """Run the post stage over a batch of post versions."""
    started = time.perf_counter()
    report = StageReport(received=len(posts))
    # The rules first: a redone batch reuses decided alerts without matching, and its alerts
    # still need the subscriptions' targets (a fresh worker has none loaded before this).
    context.rules.current()
    # Two round trips for the whole batch instead of two per post.
    stored = context.posts.has_versions(posts)
    saved = context.match_state.decided([post.version_key for post in posts])
    seen: set[str] = set()
    for post, is_stored, decided in zip(posts, stored, saved, strict=True):
        repeated = post.version_key in seen  # the same version twice in one batch
        seen.add(post.version_key)
        process_post(context, post, report, stored=is_stored or repeated, saved=decided)
    # Only now, with every version stored, do the sources' claims become two-week marks.
    confirm_seen(context.redis, sorted(seen))
    structlog.contextvars.unbind_contextvars("post")
    context.metrics.post_processed(len(posts))
    log.info(
        "posts_processed",
        received=report.received,
        stored=report.stored,
        already=report.already_stored,
        alerts=report.alerts,
        suppressed=report.suppressed,
        deliveries=report.deliveries,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return report
