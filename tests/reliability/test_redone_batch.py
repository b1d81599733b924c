"""A post batch redone after its worker died mid-way delivers every alert exactly as the first
run would have (issue 10; found by scripts/chaos.py: an alert recorded by the dead worker was
taken for an edit by the redo and suppressed, and a fresh worker reusing decided alerts had no
subscriptions loaded to deliver them to)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from service import constants
from service.config import load_settings
from service.core import alerting
from service.core.post import Post
from service.core.rules import parse_rules
from service.metrics import Metrics
from service.store.rules import RuleStore
from workers import pipeline
from workers.context import PostStage, WorkerContext

RULES = """
subscriptions:
  - id: ceasefire
    query: ceasefire
    notify:
      - telegram: 4242
"""


@pytest.fixture
def make_stage(redis_client: redis.Redis) -> Iterator[object]:
    RuleStore(redis_client).replace(parse_rules(RULES))
    made: list[WorkerContext] = []

    def factory() -> PostStage:
        """A worker's post stage as a freshly started worker has it: no rules loaded yet."""
        context = WorkerContext.build(load_settings(_env_file=None), redis_client, Metrics())
        made.append(context)
        return context.post_stage()

    yield factory
    for context in made:
        context.close()


def _post(message_id: int) -> Post:
    return Post(channel="chaos", message_id=message_id, date=datetime(2026, 1, 1, tzinfo=UTC),
                text=f"Bulletin {message_id}: ceasefire talks resume")  # fmt: skip


def _deliveries(client: redis.Redis) -> list[str]:
    queue = Queue(constants.DELIVERIES_QUEUE, connection=client, serializer=JSONSerializer)
    return [job.args[0]["alert"]["id"] for job in queue.get_jobs()]


def test_an_alert_recorded_before_the_crash_is_delivered_by_the_redo(
    redis_client: redis.Redis, make_stage: object
) -> None:
    first = make_stage()  # type: ignore[operator]
    post = _post(228)
    # The dead worker got as far as recording the alert (matched, in the alert stream)...
    enrichment = first.enricher.enrich(post)
    matches = first.rules.current().match(post, enrichment, first.clock())
    [recorded] = alerting.process(post, matches, first.match_state, enrichment=enrichment)
    assert recorded.suppressed is None and _deliveries(redis_client) == []
    # ...then died before handing it to delivery or storing the post. A new worker redoes it.
    redo = make_stage()  # type: ignore[operator]
    report = pipeline.process_posts(redo, [post])
    assert report.suppressed == 0 and report.deliveries == 1
    assert _deliveries(redis_client) == [recorded.id]  # the same alert, not an "edit"
