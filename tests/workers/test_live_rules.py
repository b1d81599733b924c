"""A worker's rules: compiled before its first job, followed in the background without making a
job wait for a compile, and kept to a matching budget (a costly subscription is set aside)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry

from service.config import load_settings
from service.core.query.index import RuleIndex
from service.core.rules import RuleSet, Subscription
from service.metrics import Metrics
from service.store.matches import read_alerts
from service.store.rules import RuleStore
from service.store.subscribers import SubscriberStore
from tests.workers.conftest import post
from workers import pipeline
from workers.context import PostStage, WorkerContext

MakeStage = Callable[[redis.Redis], PostStage]
# RE2 runs out of DFA memory on these and falls back to a slow engine: ~15-45 ms a post of 1-3 KB.
COSTLY = "/.{500}x/i"


def costly_query(n: int) -> str:
    return f"/.{{{500 + n}}}x/i"  # distinct patterns: one compiled regex would be shared


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_worker_compiles_its_rules_before_its_first_job(
    redis_url: str, redis_client: redis.Redis
) -> None:
    RuleStore(redis_client).replace(
        RuleSet(subscriptions=tuple(Subscription(f"s{n}", f"word{n}") for n in range(50)))
    )
    metrics = Metrics(CollectorRegistry())
    context = WorkerContext.build(load_settings(redis_url=redis_url, _env_file=None),
                                  redis_client, metrics)  # fmt: skip
    try:
        assert metrics.registry.get_sample_value("tgwatch_rules_compiled") == 50
        assert metrics.registry.get_sample_value("tgwatch_index_compile_seconds_count") == 1
    finally:
        context.close()


def test_a_new_rule_set_is_compiled_in_the_background_and_swapped_in(
    redis_client: redis.Redis, make_stage: MakeStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RuleStore(redis_client)
    store.replace(RuleSet(subscriptions=(Subscription("old", "ceasefire"),)))
    stage = make_stage(redis_client)
    stage.rules.interval = 0.05
    stage.rules.start()
    first = stage.rules.current()

    # A slow compile: the background thread blocks in it until released.
    compiling, release = threading.Event(), threading.Event()
    real_build = RuleIndex.build

    def slow_build(ruleset: RuleSet, on_error: object = None) -> RuleIndex:
        compiling.set()
        release.wait(30)
        return real_build(ruleset, on_error)  # type: ignore[arg-type]

    monkeypatch.setattr(RuleIndex, "build", staticmethod(slow_build))
    store.replace(RuleSet(subscriptions=(Subscription("new", "ceasefire"),)))
    assert compiling.wait(20)
    # Meanwhile jobs go on with the index they have, without waiting for the compile.
    report = pipeline.process_posts(stage, [post("ceasefire now", 1)])
    assert report.alerts == 1
    assert stage.rules.current() is first
    release.set()
    wait_for(lambda: stage.rules.current() is not first)
    pipeline.process_posts(stage, [post("ceasefire again", 2)])
    assert [a.subscription_id for _, a in read_alerts(redis_client)] == ["old", "new"]


def test_a_subscription_over_the_matching_budget_is_set_aside(
    redis_client: redis.Redis, make_stage: MakeStage
) -> None:
    costly = [Subscription(f"costly{n}", costly_query(n)) for n in range(6)]
    store = RuleStore(redis_client)
    store.replace(RuleSet(subscriptions=(Subscription("cheap", "ceasefire"), *costly)))
    version = store.version()
    stage = make_stage(redis_client)
    text = "The ceasefire holds. " + "Talks go on, day after day, in the capital. " * 60
    report = pipeline.process_posts(stage, [post(text, 1), post(text + " Later.", 2)])
    assert report.alerts == 2  # the cheap subscription still alerts, for both posts
    assert {a.subscription_id for _, a in read_alerts(redis_client)} == {"cheap"}
    # Set aside in one write of the rule set: paused for the workers, with the reason kept.
    assert store.version() == version + 1
    subscribers = SubscriberStore(redis_client)
    for sub in costly:
        stored = subscribers.require(sub.id)
        assert stored.set_aside is not None and "over budget" in stored.set_aside
        assert stored.paused is False  # not paused by its owner: a worker set it aside
    assert [sub.id for sub in store.load()[1].subscriptions if sub.paused] == [
        sub.id for sub in costly
    ]
    metric = stage.metrics.registry.get_sample_value(
        "tgwatch_subscriptions_set_aside_total", {"reason": "over_budget"}
    )
    assert metric == len(costly)
    # The index dropped them at once: the second post did not pay for them again.
    assert stage.rules.current().always == []


def test_an_owner_takes_back_a_set_aside_subscription(redis_client: redis.Redis) -> None:
    subscribers = SubscriberStore(redis_client)
    RuleStore(redis_client).replace(RuleSet(subscriptions=(Subscription("s", COSTLY),)))
    assert subscribers.set_aside({"s": "over budget: 40 ms", "missing": "x"}) == ["s"]
    assert subscribers.set_aside({"s": "again"}) == []  # already set aside: no write
    assert subscribers.require("s").set_aside == "over budget: 40 ms"
    assert subscribers.set_paused(["s"], False) == ["s"]  # resuming takes it back
    assert subscribers.require("s").set_aside is None
    assert not RuleStore(redis_client).load()[1].subscriptions[0].paused
    subscribers.set_aside({"s": "over budget"})
    subscribers.update("s", query="ceasefire")  # a new query is worth another try
    assert subscribers.require("s").set_aside is None
