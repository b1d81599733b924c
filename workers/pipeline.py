"""The post stage: every post version goes through here — store, then the later stages.

This is the single place where enrichment, matching and alerting plug in. It is synchronous
and takes its clients from the worker context, so it runs the same in a worker and in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from service.core.model import Enrichment
from service.core.post import Post
from workers.context import WorkerContext

log = structlog.get_logger(__name__)


@dataclass
class StageReport:
    """What one batch did: counts for logs, metrics and tests."""

    received: int = 0
    stored: int = 0
    already_stored: int = 0
    alerts: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)


def process_posts(context: WorkerContext, posts: list[Post]) -> StageReport:
    """Run the post stage over a batch of post versions."""
    report = StageReport(received=len(posts))
    metrics = context.metrics
    for post in posts:
        enrichment = Enrichment()
        with metrics.stage_timer("store"):
            seq = context.posts.store(post, enrichment)
        if seq <= 0:
            # Already stored (a retried batch, or two sources racing): nothing more to do.
            report.already_stored += 1
            continue
        report.stored += 1
    metrics.post_processed(len(posts))
    log.info("posts_processed", received=report.received, stored=report.stored,
             already=report.already_stored)  # fmt: skip
    return report
