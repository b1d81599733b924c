"""The rule set in Redis — subscriptions, watched entities, a version — and the one class that
writes it, plus the workers' cache of the compiled index that follows its changes.

Layout: ``rules:subscriptions`` and ``rules:entities`` are hashes of id -> JSON (the shapes of
``Subscription.to_dict`` plus the subscriber store's own fields, and ``WatchedEntity.to_dict``);
``rules:version`` is a counter. ``RuleStore`` owns all three keys: every change goes through
``RuleStore.write()``, one MULTI/EXEC transaction that bumps the version exactly once, so a
worker never compiles a half-written rule set and an import of any size is one recompile.
A worker's ``RuleCache`` GETs the version at most once a second and recompiles only when it
moved, so a change is live within ~2 s and no post ever pays for a compile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import structlog
from redis.client import Pipeline

from service import constants
from service.core import secretbox
from service.core.memory import collector_paused
from service.core.model import WatchedEntity
from service.core.query.index import RuleIndex
from service.core.rules import RuleSet, Subscription
from service.core.secretbox import SecretBox
from service.redis import text

log = structlog.get_logger(__name__)

SUBSCRIPTIONS_KEY = constants.RULES_SUBSCRIPTIONS_KEY
ENTITIES_KEY = constants.RULES_ENTITIES_KEY
VERSION_KEY = constants.RULES_VERSION_KEY


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _load(value: Any) -> dict[str, Any]:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _subscription(key: bytes, value: bytes) -> Subscription | None:
    try:
        return Subscription.from_dict(_load(value))
    except (KeyError, TypeError, ValueError):
        log.warning("rule_unreadable", subscription=text(key))
        return None


class RulesWrite:
    """One transaction on the rule set: queue changes, then ``RuleStore.write`` runs them with
    one version bump. ``pipe`` takes the caller's own commands into the same transaction (the
    subscriber store's indexes). Webhook secrets are sealed here (``box``), the one place a
    subscription record is written."""

    def __init__(self, pipe: Pipeline, box: SecretBox | None = None) -> None:
        self.pipe = pipe
        self.box = box if box is not None else secretbox.installed()
        self.changes = 0

    def _dump_record(self, record: dict[str, Any]) -> str:
        return _dump(self.box.seal_record(record))

    def clear(self) -> None:
        """Remove every subscription and entity (a rule set replaced whole)."""
        self.pipe.delete(SUBSCRIPTIONS_KEY, ENTITIES_KEY)
        self.changes += 1

    def put_subscription(self, record: dict[str, Any]) -> None:
        self.pipe.hset(SUBSCRIPTIONS_KEY, str(record["id"]), self._dump_record(record))
        self.changes += 1

    def put_subscriptions(self, records: list[dict[str, Any]]) -> None:
        if records:
            self.pipe.hset(
                SUBSCRIPTIONS_KEY, mapping={str(r["id"]): self._dump_record(r) for r in records}
            )
            self.changes += len(records)

    def delete_subscriptions(self, *ids: str) -> None:
        if ids:
            self.pipe.hdel(SUBSCRIPTIONS_KEY, *ids)
            self.changes += len(ids)

    def put_entities(self, entities: list[WatchedEntity]) -> None:
        if entities:
            self.pipe.hset(ENTITIES_KEY, mapping={e.id: _dump(e.to_dict()) for e in entities})
            self.changes += len(entities)

    def delete_entities(self, *ids: str) -> None:
        if ids:
            self.pipe.hdel(ENTITIES_KEY, *ids)
            self.changes += len(ids)


class RuleStore:
    """Reads and writes the rule set; the only code that touches its keys. Records are read as
    stored: webhook secrets sealed (``service.core.secretbox``) when a key was set."""

    def __init__(self, client: redis.Redis, box: SecretBox | None = None) -> None:
        self.client = client
        self.box = box  # None: the process's box, looked up at each write

    @contextmanager
    def write(self) -> Iterator[RulesWrite]:
        """A transaction: queue changes on the yielded ``RulesWrite``; on exit they run at once
        with one version bump (none if nothing was queued)."""
        pipe = self.client.pipeline(transaction=True)
        batch = RulesWrite(pipe, self.box)
        yield batch
        _commit(batch)

    def rewrite(
        self, ids: list[str], change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> list[str]:
        """Rewrite stored records in one optimistic transaction: ``change`` gets each record of
        ``ids`` as stored and returns its new form (None: leave it). Every record written is the
        change of the record read, even with other writers about: the transaction watches the
        rule set and starts again (``change`` runs again) when another writer got in between.
        One version bump when anything changed; returns the ids rewritten."""
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(SUBSCRIPTIONS_KEY)  # type: ignore[no-untyped-call]
                    raw = pipe.hmget(SUBSCRIPTIONS_KEY, ids) if ids else []
                    changed = []
                    for value in raw:
                        new = None if value is None else change(_load(value))
                        if new is not None:
                            changed.append(new)
                    pipe.multi()
                    batch = RulesWrite(pipe, self.box)
                    batch.put_subscriptions(changed)
                    _commit(batch)
                    return [str(record["id"]) for record in changed]
                except redis.WatchError:
                    continue

    def subscription_ids(self) -> list[str]:
        """Every stored subscription id, sorted (ids only: 100k of them are a few MB)."""
        return sorted(text(key) for key in self.client.hkeys(SUBSCRIPTIONS_KEY))

    def replace(self, ruleset: RuleSet) -> int:
        """Make ``ruleset`` the whole rule set; returns the new version."""
        with self.write() as batch:
            batch.clear()
            batch.put_subscriptions([sub.to_dict() for sub in ruleset.subscriptions])
            batch.put_entities(list(ruleset.entities))
        return self.version()

    def version(self) -> int:
        value = self.client.get(VERSION_KEY)
        return int(value) if value is not None else 0

    def record(self, subscription_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(SUBSCRIPTIONS_KEY, subscription_id)
        return None if raw is None else _load(raw)

    def records(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored subscription records (of ``ids`` when given, in that order, missing skipped)."""
        if ids is None:
            raw = list(self.client.hgetall(SUBSCRIPTIONS_KEY).values())
        elif ids:
            raw = [value for value in self.client.hmget(SUBSCRIPTIONS_KEY, ids) if value]
        else:
            raw = []
        return [_load(value) for value in raw]

    def exists(self, subscription_id: str) -> bool:
        return bool(self.client.hexists(SUBSCRIPTIONS_KEY, subscription_id))

    def entities(self) -> dict[str, WatchedEntity]:
        raw = self.client.hgetall(ENTITIES_KEY)
        found = (WatchedEntity.from_dict(_load(value)) for value in raw.values())
        return {entity.id: entity for entity in found}

    def load(self) -> tuple[int, RuleSet]:
        """The version and the rule set, read in one transaction.

        A stored subscription that cannot be read is left out and logged; one whose query cannot
        be used (a bad query, an entity that is gone) is left out by the compile
        (``RuleIndex.build`` with ``on_error``), which parses each query once: one bad write
        cannot stop every other subscription from matching.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.get(VERSION_KEY)
        pipe.hgetall(SUBSCRIPTIONS_KEY)
        pipe.hgetall(ENTITIES_KEY)
        version, raw_subs, raw_entities = pipe.execute()
        entities = tuple(
            sorted((WatchedEntity.from_dict(_load(v)) for v in raw_entities.values()),
                   key=lambda e: e.id)
        )  # fmt: skip
        subscriptions = []
        while raw_subs:  # one record at a time, each let go once read: a low peak at 100k
            key, value = raw_subs.popitem()
            sub = _subscription(key, value)
            if sub is not None:
                subscriptions.append(sub)
        subscriptions.sort(key=lambda sub: sub.id)
        number = int(version) if version is not None else 0
        # The version is the store's counter: no digest of the whole rule set to compute.
        return number, RuleSet(entities, tuple(subscriptions), version=str(number))


def _commit(batch: RulesWrite) -> None:
    """Run a rule-set transaction, bumping the version once when it changed anything."""
    if batch.changes:
        batch.pipe.incr(VERSION_KEY)
    batch.pipe.execute()


def _skipped(subscription_id: str, problem: str) -> None:
    log.warning("rule_skipped", subscription=subscription_id, problem=problem)


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
        self.store = RuleStore(client)
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
        if self._index is not None and self.store.version() == self.version:
            return self._index
        started = time.perf_counter()
        with collector_paused():  # 100k records and rules: no collection walks them meanwhile
            version, ruleset = self.store.load()
            self._index = RuleIndex.build(ruleset, on_error=_skipped)
        self.ruleset = ruleset
        self.version = version
        log.info(
            "rules_compiled",
            version=version,
            subscriptions=len(self._index),
            seconds=round(time.perf_counter() - started, 3),
        )
        return self._index
