"""Rules in Redis, and the workers' cache of the compiled index that follows their changes.

Layout: ``rules:subscriptions`` and ``rules:entities`` are hashes of id -> JSON (the shapes of
``Subscription.to_dict`` and ``WatchedEntity.to_dict``); ``rules:version`` is a counter bumped
by every write. A worker's ``RuleCache`` GETs the counter at most once a second and recompiles
only when it moved, so a change is live within ~2 s and no post ever pays for a compile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from service import constants
from service.core.model import WatchedEntity
from service.core.query.index import RuleIndex
from service.core.rules import RuleSet, Subscription, query_problem

log = structlog.get_logger(__name__)


def save_ruleset(client: redis.Redis, ruleset: RuleSet) -> int:
    """Replace every subscription and entity in Redis with ``ruleset``; returns the new version."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(constants.RULES_SUBSCRIPTIONS_KEY, constants.RULES_ENTITIES_KEY)
    if ruleset.subscriptions:
        pipe.hset(
            constants.RULES_SUBSCRIPTIONS_KEY,
            mapping={sub.id: _dump(sub.to_dict()) for sub in ruleset.subscriptions},
        )
    if ruleset.entities:
        pipe.hset(
            constants.RULES_ENTITIES_KEY,
            mapping={entity.id: _dump(entity.to_dict()) for entity in ruleset.entities},
        )
    pipe.incr(constants.RULES_VERSION_KEY)
    return int(pipe.execute()[-1])


def save_subscription(client: redis.Redis, subscription: Subscription) -> int:
    """Add or replace one subscription (the subscription store writes through this)."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(constants.RULES_SUBSCRIPTIONS_KEY, subscription.id, _dump(subscription.to_dict()))
    pipe.incr(constants.RULES_VERSION_KEY)
    return int(pipe.execute()[-1])


def delete_subscription(client: redis.Redis, subscription_id: str) -> bool:
    """Remove one subscription; False when there was none."""
    pipe = client.pipeline(transaction=True)
    pipe.hdel(constants.RULES_SUBSCRIPTIONS_KEY, subscription_id)
    pipe.incr(constants.RULES_VERSION_KEY)
    removed, _version = pipe.execute()
    return bool(removed)


def rules_version(client: redis.Redis) -> int:
    value = client.get(constants.RULES_VERSION_KEY)
    return int(value) if value is not None else 0


def load_ruleset(client: redis.Redis) -> tuple[int, RuleSet]:
    """The version and the rule set stored in Redis, read in one transaction.

    A stored subscription that cannot be used (a bad query, an entity that is gone) is left out
    and logged, so one bad write cannot stop every other subscription from matching.
    """
    pipe = client.pipeline(transaction=True)
    pipe.get(constants.RULES_VERSION_KEY)
    pipe.hgetall(constants.RULES_SUBSCRIPTIONS_KEY)
    pipe.hgetall(constants.RULES_ENTITIES_KEY)
    version, raw_subs, raw_entities = pipe.execute()
    entities = tuple(
        sorted((WatchedEntity.from_dict(_load(v)) for v in raw_entities.values()),
               key=lambda e: e.id)
    )  # fmt: skip
    entity_ids = {entity.id for entity in entities}
    subscriptions = []
    for value in raw_subs.values():
        try:
            sub = Subscription.from_dict(_load(value))
        except (KeyError, TypeError, ValueError):
            log.warning("rule_unreadable", value=str(value)[:200])
            continue
        problem = query_problem(sub.id, sub.query, entity_ids)
        if problem:
            log.warning("rule_skipped", subscription=sub.id, problem=problem)
            continue
        subscriptions.append(sub)
    subscriptions.sort(key=lambda sub: sub.id)
    return (int(version) if version is not None else 0), RuleSet(entities, tuple(subscriptions))


class RuleCache:
    """The compiled index a worker matches with, rebuilt only when the rules' version moves.

    ``get()`` is called per batch (or per post): it costs nothing between checks, one GET per
    ``interval`` seconds, and a compile only after a change.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        interval: float = constants.RULES_CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.interval = interval
        self.clock = clock
        self.version: int | None = None
        self._index: RuleIndex | None = None
        self.ruleset = RuleSet()  # the rule set the current index was compiled from
        self._checked = float("-inf")

    def get(self) -> RuleIndex:
        now = self.clock()
        if self._index is not None and now - self._checked < self.interval:
            return self._index
        self._checked = now
        if self._index is not None and rules_version(self.client) == self.version:
            return self._index
        started = time.perf_counter()
        version, ruleset = load_ruleset(self.client)
        self._index = RuleIndex.build(ruleset)
        self.ruleset = ruleset
        self.version = version
        log.info(
            "rules_compiled",
            version=version,
            subscriptions=len(self._index),
            seconds=round(time.perf_counter() - started, 3),
        )
        return self._index


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _load(value: Any) -> dict[str, Any]:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
