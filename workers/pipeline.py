"""The post stage: every post version goes through here — enrich, match, alert, store.

This is the single place where enrichment, matching and alerting plug in. It is synchronous
and takes its clients from the worker's post-stage context, so it runs the same in a worker
and in tests.

A batch goes through in two Redis round trips, whatever its size: the CPU work of every post
first (one tokenization shared by enrichment and the duplicate check; the duplicate check only
for posts that matched something), then one pipeline of reads (already stored? decided by an
earlier attempt? what earlier versions matched, with a claim on each matched text), the alert
decisions (pure), and one MULTI/EXEC transaction of writes (decided alerts, match state, the
alert stream, deliveries, the stored versions).

A retried batch must neither lose nor repeat an alert. The writes of a batch land together or
not at all; a stored version is a finished one and is skipped; the alerts decided for a version
are kept for a day and reused by a retry instead of being decided again (the match state would
by then call them edits); a text's claim names its post, so a retry of that post still alerts;
and handing alerts to delivery is idempotent (the alert id is derived from the subscription and
the post version; deliveries are claimed per alert and target).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from service.core import alerting
from service.core.model import Alert, Enrichment
from service.core.post import Post
from service.core.query.match import Match
from service.core.text import Token, tokenize
from service.delivery_queue import enqueue_deliveries
from service.queue import queue_confirm_seen
from service.store.batch import Batch
from service.store.matches import decode_decided
from service.store.posts import json_parts
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
    set_aside: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Version:
    """One post version of a batch on its way through the stage."""

    post: Post
    queued_at: float | None
    tokens: list[Token]
    enrichment: Enrichment
    matches: list[Match]
    text_key: str | None = None
    claimed: tuple[str, ...] = ()  # the subscriptions whose text claim was queued
    earlier: frozenset[str] = frozenset()  # matched by earlier versions in this batch
    alerts: list[Alert] = field(default_factory=list)
    stored: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # the post's JSON form
    parts: tuple[str, str] = ("", "")  # the post's and its enrichment's JSON


def _analyse(context: PostStage, post: Post, now: float, queued_at: float | None) -> _Version:
    """The CPU part of one version: enrich and match, sharing one tokenization."""
    metrics = context.metrics
    with metrics.stage_timer("enrich"):
        tokens = tokenize(post.text)
        enrichment = context.enricher.enrich(post, tokens)
    with metrics.stage_timer("match"):
        matches = context.rules.match(post, enrichment, now)
    version = _Version(post, queued_at, tokens, enrichment, matches)
    if matches:  # the duplicate check's hash, only for posts that alert someone
        version.text_key = alerting.words_key(token.norm for token in tokens)
    return version


def _read(context: PostStage, versions: list[_Version], now: float) -> None:
    """One round trip: which versions are stored, what earlier attempts decided, and for each
    version that matched, the prior state with its text claimed (in batch order); then each
    version's alerts are decided (or taken from what an earlier attempt decided)."""
    batch = Batch(context.redis)
    context.posts.queue_has_versions(batch, [version.post for version in versions])
    context.match_state.queue_decided(batch, [version.post.version_key for version in versions])
    earlier: dict[str, set[str]] = {}  # post key -> matched by versions earlier in the batch
    for version in versions:
        if not version.matches:
            continue
        ids = [match.subscription_id for match in version.matches]
        before = earlier.setdefault(version.post.key, set())
        version.earlier = frozenset(before)
        version.claimed = tuple(sub for sub in ids if sub not in before)
        context.match_state.queue_claims(batch, version.post.key, version.text_key, version.claimed)
        # Whether an earlier version is stored: an edit alert needs one (a backfilled post
        # carrying an edit time is a plain post).
        context.posts.queue_version_count(batch, version.post)
        before.update(ids)
    replies = batch.execute()
    count = len(versions)
    stored, decided, claims = replies[:count], replies[count], iter(replies[count + 1 :])
    in_batch: set[str] = set()  # post keys with a version earlier in the batch
    for version, is_stored, raw in zip(versions, stored, decided, strict=True):
        follows_another = version.post.key in in_batch
        in_batch.add(version.post.key)
        claimed = next(claims) if version.matches else None
        stored_versions = int(next(claims)) if version.matches else 0
        version.stored = bool(is_stored)
        version.data = version.post.to_dict()
        version.parts = json_parts(version.post, version.enrichment, version.data)
        if raw is not None:  # decided by a failed attempt: hand out the same alerts
            version.alerts = decode_decided(raw, version.data, version.enrichment.to_dict())
        elif claimed is not None:
            prior = context.match_state.claims_prior(
                claimed,
                version.claimed,
                version.earlier,
                earlier_version=follows_another or stored_versions > int(version.stored),
            )
            version.alerts = alerting.decide(
                version.post,
                version.matches,
                prior,
                enrichment=version.enrichment,
                now=now,
                post_data=version.data,
            )


def _deliver(context: PostStage, alerts: list[Alert], report: StageReport, batch: Batch) -> None:
    metrics = context.metrics
    for alert in alerts:
        metrics.match(context.rules.kind(alert.subscription_id))
        metrics.alert(alert)
        report.matches += 1
        if alert.suppressed is not None:
            report.suppressed += 1
            continue
        report.alerts += 1
        subscription = context.rules.subscriptions.get(alert.subscription_id)
        # The owner's own alert stream (GET /v1/alerts reads it in one call); once per alert.
        owner = subscription.owner if subscription else None
        context.match_state.queue_owner_alert(batch, alert, owner)
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
            pipeline=batch.pipe,
        )


def _write(context: PostStage, versions: list[_Version], report: StageReport) -> None:
    """One transaction: each new version's alerts, deliveries and the version itself."""
    batch = Batch(context.redis, transaction=True)
    stores: list[int] = []  # where each stored version's reply is
    for version in versions:
        if version.stored:
            report.already_stored += 1
            continue
        post = version.post
        context.match_state.queue_record(
            batch, post.version_key, post.key, version.alerts, version.parts
        )
        _deliver(context, version.alerts, report, batch)
        stores.append(len(batch))
        context.posts.queue_store(batch, post, version.parts)
    if not stores:
        return
    # With the versions stored, the sources' claims become two-week "seen" marks (only then:
    # a batch lost before it was stored must not block a re-ingest for weeks).
    queue_confirm_seen(batch.pipe, [v.post.version_key for v in versions if not v.stored])
    replies = batch.execute()
    for at in stores:
        if int(replies[at]) > 0:
            report.stored += 1
        else:  # stored meanwhile by another worker, or too many versions to keep another
            report.already_stored += 1


def process_posts(
    context: PostStage, posts: list[Post], queued_at: Sequence[float | None] | None = None
) -> StageReport:
    """Run the post stage over a batch of post versions. ``queued_at`` (Unix times, one per
    post, when known) is when each was handed to the queue: ``enqueued → decided`` is observed
    from it."""
    started = time.perf_counter()
    report = StageReport(received=len(posts))
    now = context.clock()
    versions: list[_Version] = []
    seen: set[str] = set()
    times = list(queued_at) if queued_at is not None else [None] * len(posts)
    for post, at in zip(posts, times, strict=True):
        if post.version_key in seen:  # the same version twice in one batch
            report.already_stored += 1
            continue
        seen.add(post.version_key)
        structlog.contextvars.bind_contextvars(post=post.version_key)
        versions.append(_analyse(context, post, now, at))
    structlog.contextvars.unbind_contextvars("post")
    if versions:
        with context.metrics.batch_timer("alert", len(versions)):
            _read(context, versions, now)
        with context.metrics.batch_timer("store", len(versions)):
            _write(context, versions, report)
    decided_at = time.time()
    for version in versions:
        if version.queued_at is not None and not version.stored:
            context.metrics.alert_decided(decided_at - version.queued_at)
    report.set_aside = context.rules.set_aside_over_budget()
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
