"""Rules in Redis: save and load, and a worker cache that follows changes without recompiling
per post."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from service import constants
from service.core.model import WatchedEntity
from service.core.post import Post
from service.core.rules import RuleSet, Subscription
from service.rules_watch import (
    RuleCache,
    delete_subscription,
    load_ruleset,
    save_ruleset,
    save_subscription,
)

RULES = RuleSet(
    entities=(WatchedEntity("lavrov", "Sergey Lavrov", ("Лавров",)),),
    subscriptions=(
        Subscription("lavrov", "entity:lavrov"),
        Subscription("paused", "anything", paused=True, notify=({"telegram": 1},)),
    ),
)


def post(text: str) -> Post:
    return Post(channel="c", message_id=1, date=datetime(2024, 9, 25, tzinfo=UTC), text=text)


def test_save_and_load_round_trip(redis_client: redis.Redis) -> None:
    version = save_ruleset(redis_client, RULES)
    loaded_version, loaded = load_ruleset(redis_client)
    assert loaded_version == version == 1
    assert loaded == RULES
    assert save_ruleset(redis_client, RuleSet()) == 2
    assert load_ruleset(redis_client) == (2, RuleSet())


def test_unusable_stored_subscriptions_are_skipped(redis_client: redis.Redis) -> None:
    save_ruleset(redis_client, RULES)
    save_subscription(redis_client, Subscription("broken", "a AND"))
    redis_client.hset(constants.RULES_SUBSCRIPTIONS_KEY, "garbage", "not json")
    _, loaded = load_ruleset(redis_client)
    assert [sub.id for sub in loaded.subscriptions] == ["lavrov", "paused"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_recompiles_only_after_a_change(redis_client: redis.Redis) -> None:
    save_ruleset(redis_client, RULES)
    clock = Clock()
    cache = RuleCache(redis_client, interval=1.0, clock=clock)
    first = cache.get()
    assert [m.subscription_id for m in first.match(post("слова Лаврова"))] == ["lavrov"]
    clock.now = 5.0
    assert cache.get() is first  # checked the version: unchanged, same index

    save_subscription(redis_client, Subscription("ceasefire", "перемирие"))
    clock.now = 5.5
    assert cache.get() is first  # within the interval: not even checked
    clock.now = 6.0
    second = cache.get()
    assert second is not first
    assert [m.subscription_id for m in second.match(post("о перемирии"))] == ["ceasefire"]

    assert delete_subscription(redis_client, "ceasefire") is True
    assert delete_subscription(redis_client, "ceasefire") is False
    clock.now = 7.0
    assert cache.get().match(post("о перемирии")) == []


def test_empty_redis_gives_an_empty_index(redis_client: redis.Redis) -> None:
    index = RuleCache(redis_client).get()
    assert len(index) == 0
    assert index.match(post("anything")) == []
