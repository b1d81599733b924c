"""RQ entry points, kept thin: decode the JSON payload, take the process context, call the stage."""

from __future__ import annotations

import time
from typing import Any

import structlog

from service.core.formats.result import Rejected
from service.core.post import Post
from service.queue import record_rejected
from workers import pipeline
from workers.context import current

log = structlog.get_logger(__name__)


def process_posts(payload: list[dict[str, Any]]) -> dict[str, int]:
    """Process a batch of posts (``Post.to_dict`` form).

    An item that does not decode is set aside (``tgwatch rejected``) and the rest go through;
    an error in the stage itself fails the job, which RQ retries and then keeps in its failed
    registry with the traceback.
    """
    context = current()
    started = time.perf_counter()
    posts: list[Post] = []
    for index, item in enumerate(payload):
        try:
            posts.append(Post.from_dict(item))
        except (KeyError, ValueError, TypeError) as exc:
            reason = f"bad post in job payload: {type(exc).__name__}: {exc}"
            record_rejected(context.redis, Rejected("job", index, reason, repr(item)[:2000]),
                            stage="job")  # fmt: skip
            log.warning("job_item_rejected", index=index, reason=reason)
    if payload:
        context.metrics.observe_stage("parse", (time.perf_counter() - started) / len(payload))
    report = pipeline.process_posts(context, posts)
    return {"received": report.received, "stored": report.stored, "alerts": report.alerts}
