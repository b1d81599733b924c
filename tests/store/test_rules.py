"""The rule set in Redis: one writer (RuleStore) whose transactions bump the version once, and
a worker cache that follows changes without recompiling per post."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from structlog.testing import capture_logs

from service import constants
from service.core.model import WatchedEntity
from service.core.post import Post
from service.core.rules import RuleSet, Subscription
from service.store.rules import RuleCache, RuleStore

RULES = RuleSet(
    entities=(WatchedEntity("lavrov", "Sergey Lavrov", ("Лавров",)),),
    subscriptions=(
        Subscription("lavrov", "entity:lavrov"),
        Subscription("paused", "anything", paused=True, notify=({"telegram": 1},)),
    ),
)


def post(text: str) -> Post:
    return Post(channel="c", message_id=1, date=datetime(2024, 9, 25, tzinfo=UTC), text=text)


def save_subscription(client: redis.Redis, sub: Subscription) -> None:
    with RuleStore(client).write() as batch:
        batch.put_subscription(sub.to_dict())


def delete_subscription(client: redis.Redis, subscription_id: str) -> None:
    with RuleStore(client).write() as batch:
        batch.delete_subscriptions(subscription_id)


def test_save_and_load_round_trip(redis_client: redis.Redis) -> None:
    store = RuleStore(redis_client)
    version = store.replace(RULES)
    loaded_version, loaded = store.load()
    assert loaded_version == version == 1
    assert loaded == RULES
    assert store.replace(RuleSet()) == 2
    assert store.load() == (2, RuleSet())


def test_a_write_is_one_transaction_and_one_version_bump(redis_client: redis.Redis) -> None:
    store = RuleStore(redis_client)
    store.replace(RULES)
    many = [Subscription(f"s{i}", f"word{i}").to_dict() for i in range(500)]
    with store.write() as batch:
        batch.put_subscriptions(many)
        # Nothing is visible before the transaction ends: a worker never sees half an import.
        assert store.version() == 1
        assert len(store.load()[1].subscriptions) == 2
    assert store.version() == 2
    assert len(store.load()[1].subscriptions) == 502
    with store.write():
        pass  # nothing queued: no bump, no recompile
    assert store.version() == 2


def test_unusable_stored_subscriptions_are_skipped(redis_client: redis.Redis) -> None:
    RuleStore(redis_client).replace(RULES)
    save_subscription(redis_client, Subscription("broken", "a AND"))
    save_subscription(redis_client, Subscription("gone", "entity:nobody"))
    save_subscription(redis_client, Subscription("fine", "перемирие"))
    redis_client.hset(constants.RULES_SUBSCRIPTIONS_KEY, "garbage", "not json")
    with capture_logs() as logs:
        _, loaded = RuleStore(redis_client).load()
        index = RuleCache(redis_client).get()
    # Unreadable records are left out when loading; unusable queries by the compile, which
    # parses each query once (no separate validation pass).
    assert [sub.id for sub in loaded.subscriptions] == [
        "broken",
        "fine",
        "gone",
        "lavrov",
        "paused",
    ]
    assert sorted(rule.subscription_id for rule in index.rules) == ["fine", "lavrov"]
    assert [m.subscription_id for m in index.match(post("о перемирии"))] == ["fine"]
    skipped = {e["subscription"] for e in logs if e["event"] in ("rule_skipped", "rule_unreadable")}
    assert skipped == {"broken", "gone", "garbage"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_recompiles_only_after_a_change(redis_client: redis.Redis) -> None:
    RuleStore(redis_client).replace(RULES)
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

    delete_subscription(redis_client, "ceasefire")
    clock.now = 7.0
    assert cache.get().match(post("о перемирии")) == []


def test_empty_redis_gives_an_empty_index(redis_client: redis.Redis) -> None:
    index = RuleCache(redis_client).get()
    assert len(index) == 0
    assert index.match(post("anything")) == []
