"""The post stage goes through a batch in two Redis round trips, shares one tokenization,
computes the duplicate hash only for posts that matched, and keeps the alert rules inside a batch
(edits, copies) as if its posts came one by one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis

from service import constants
from service.core import alerting
from service.core.rules import RuleSet, Subscription
from service.store.matches import decided_key, read_alerts
from service.store.rules import RuleStore
from tests.workers.conftest import CountingConnection, post
from workers import pipeline
from workers.context import PostStage

RULES = RuleSet(
    subscriptions=(
        Subscription("ceasefire", "ceasefire"),
        Subscription("talks", "talks"),
        Subscription("never", "zyzzyva"),
    )
)
MakeStage = Callable[[redis.Redis], PostStage]


def outcomes(client: redis.Redis) -> list[tuple[str, str]]:
    return [(a.post_key, a.subscription_id) for _, a in read_alerts(client, count=1000)]


def test_a_batch_is_two_round_trips_whatever_its_size(
    counting_client: redis.Redis, make_stage: MakeStage
) -> None:
    RuleStore(counting_client).replace(RULES)
    stage = make_stage(counting_client)
    stage.rules.current()  # compiled (a worker compiles at start)
    posts = [post(f"ceasefire talks, item {n}", n) for n in range(30)]
    posts += [post(f"nothing to see, item {n}", 100 + n) for n in range(30)]
    before = CountingConnection.sends
    report = pipeline.process_posts(stage, posts)
    assert CountingConnection.sends - before == 2  # one pipeline of reads, one of writes
    assert report.stored == 60
    assert report.alerts == 60
    assert len(outcomes(counting_client)) == 60


def test_one_tokenization_and_the_duplicate_hash_only_for_matched_posts(
    redis_client: redis.Redis, make_stage: MakeStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    calls = {"tokenize": 0, "hash": 0}
    real_tokenize, real_key = pipeline.tokenize, alerting.words_key

    def tokenize(text: str) -> list:  # type: ignore[type-arg]
        calls["tokenize"] += 1
        return real_tokenize(text)

    def words_key(norms):  # type: ignore[no-untyped-def]
        calls["hash"] += 1
        return real_key(norms)

    def no_second_tokenization(text: str) -> list:  # type: ignore[type-arg]
        raise AssertionError("enrichment tokenized the text again")

    monkeypatch.setattr(pipeline, "tokenize", tokenize)
    monkeypatch.setattr(alerting, "words_key", words_key)
    monkeypatch.setattr("service.core.enrich.tokenize", no_second_tokenization)
    posts = [post("A ceasefire was agreed", 1), post("Weather", 2), post("Sports news", 3)]
    pipeline.process_posts(stage, posts)
    assert calls == {"tokenize": 3, "hash": 1}
    # Posts that matched nothing leave no match state behind: one claim, one matched set.
    claims = list(redis_client.scan_iter(f"{constants.ALERTED_TEXT_PREFIX}*"))
    assert [redis_client.get(key) for key in claims] == [b"chan/1"]
    assert [
        key.decode() for key in redis_client.scan_iter(f"{constants.MATCHED_POST_PREFIX}*")
    ] == [f"{constants.MATCHED_POST_PREFIX}chan/1"]


def test_edits_and_copies_in_one_batch_are_decided_as_if_one_by_one(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    batch = [
        post("Ceasefire agreed", 1),
        post("Ceasefire agreed; talks tomorrow", 1, edited=True),  # an edit of post 1
        post("ceasefire AGREED!", 7, channel="copier"),  # a copy of post 1's first text
    ]
    report = pipeline.process_posts(stage, batch)
    assert report.alerts == 2 and report.suppressed == 2
    assert outcomes(redis_client) == [("chan/1", "ceasefire"), ("chan/1", "talks")]
    stored = [json.loads(raw) for raw in redis_client.mget(
        [decided_key(p.version_key) for p in batch])]  # fmt: skip
    assert [[(a["subscription_id"], a["suppressed"], a["duplicate_of"]) for a in alerts]
            for alerts in stored] == [
        [("ceasefire", None, None)],
        [("ceasefire", "edit", None), ("talks", None, None)],
        [("ceasefire", "duplicate", "chan/1")],
    ]  # fmt: skip


def test_decided_alerts_are_kept_by_reference_and_reused_by_a_retry(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    first = post("ceasefire news", 1)
    pipeline.process_posts(stage, [first])
    [record] = json.loads(redis_client.get(decided_key(first.version_key)) or "[]")
    assert "post" not in record and "enrichment" not in record  # the post is stored once
    assert record["highlights"] == [{"start": 0, "end": 9, "text": "ceasefire"}]

    # An earlier attempt at another version decided an alert the rules no longer give: a retry
    # hands out the same alerts, with the post it has in hand.
    retried = post("talks resume", 2)
    saved = {**record, "id": "al_saved", "subscription_id": "gone", "highlights": []}
    redis_client.set(decided_key(retried.version_key), json.dumps([saved]))
    pipeline.process_posts(stage, [retried])
    _, alert = read_alerts(redis_client)[-1]
    assert (alert.id, alert.subscription_id, alert.post["text"]) == (
        "al_saved", "gone", "talks resume")  # fmt: skip
    assert alert.enrichment["lang"] == "en"


def test_enqueued_to_decided_is_observed_per_post(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    queued = time.time() - 0.05
    pipeline.process_posts(stage, [post("ceasefire", 1), post("quiet", 2)], [queued, queued])
    registry = stage.metrics.registry
    assert registry.get_sample_value("tgwatch_decision_latency_seconds_count") == 2
    assert (registry.get_sample_value("tgwatch_decision_latency_seconds_sum") or 0) >= 0.1
    assert registry.get_sample_value(
        "tgwatch_decision_latency_seconds_bucket", {"le": "0.025"}) == 0  # fmt: skip


def _edited(client: redis.Redis) -> dict[tuple[str, str], bool]:
    return {(a.post_key, a.subscription_id): a.edited_now_matches for _, a in read_alerts(client)}


def test_an_edit_that_now_matches_is_an_edit_after_a_version_that_matched_nothing(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    # An earlier version in an earlier batch, and one earlier in the same batch.
    pipeline.process_posts(stage, [post("Weather today", 1)])
    pipeline.process_posts(
        stage,
        [
            post("Ceasefire agreed", 1, edited=True),
            post("Sports news", 2),
            post("Talks tomorrow", 2, edited=True),
        ],
    )
    assert _edited(redis_client) == {("chan/1", "ceasefire"): True, ("chan/2", "talks"): True}


def test_a_backfilled_post_carrying_an_edit_time_is_not_an_edit(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    """Exports carry an edit time on most messages: a first-seen version is a plain post, and a
    replay of the same version is nothing new."""
    RuleStore(redis_client).replace(RULES)
    stage = make_stage(redis_client)
    backfilled = post("Ceasefire agreed", 3, edited=True)
    pipeline.process_posts(stage, [backfilled])
    report = pipeline.process_posts(stage, [backfilled])
    assert report.alerts == 0 and report.already_stored == 1
    assert _edited(redis_client) == {("chan/3", "ceasefire"): False}
