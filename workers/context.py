"""The per-process context of a worker: built once at start-up, handed to every job."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from redis import Redis
from rq import Queue

from service.analyzers import enricher_from_settings
from service.config import Settings
from service.core.enrich import Enricher
from service.core.query.index import RuleIndex
from service.core.rules import RuleSet, Subscription
from service.metrics import Metrics
from service.rules_watch import RuleCache
from service.store.matches import RedisMatchState
from service.store.posts import PostStore

log = structlog.get_logger(__name__)

_current: WorkerContext | None = None


class LiveRules:
    """The compiled index plus the subscriptions and watched entities behind it, refreshed when
    the rules' version in Redis moves (checked at most every second, compiled only on change)."""

    def __init__(
        self,
        client: Redis,
        *,
        metrics: Metrics | None = None,
        on_change: Callable[[RuleSet], None] | None = None,
    ) -> None:
        self.client = client
        self.cache = RuleCache(client)
        self.metrics = metrics
        self.on_change = on_change
        self.subscriptions: dict[str, Subscription] = {}
        self._version: int | None = None

    def current(self) -> RuleIndex:
        started = time.perf_counter()
        index = self.cache.get()
        if self.cache.version != self._version:
            ruleset = self.cache.ruleset
            self.subscriptions = {sub.id: sub for sub in ruleset.subscriptions}
            self._version = self.cache.version
            if self.on_change is not None:
                self.on_change(ruleset)
            if self.metrics is not None:
                self.metrics.set_rules(
                    len(ruleset.subscriptions), len(index), time.perf_counter() - started
                )
        return index


@dataclass
class WorkerContext:
    """Everything a job needs: clients, stores, the compiled rules and the analyzers.

    RQ calls job functions by name with only their payload, so the worker's composition root
    installs one context per process with ``install`` and jobs read it with ``current``; nothing
    here is created at import time.
    """

    settings: Settings
    redis: Redis
    posts: PostStore
    metrics: Metrics
    enricher: Enricher
    rules: LiveRules
    match_state: RedisMatchState
    deliveries: Queue
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def build(
        cls, settings: Settings, connection: Redis, metrics: Metrics | None = None
    ) -> WorkerContext:
        from workers.delivery.context import deliveries_queue

        metrics = metrics or Metrics()
        enricher = enricher_from_settings(settings)
        context = cls(
            settings=settings,
            redis=connection,
            posts=PostStore(connection),
            metrics=metrics,
            enricher=enricher,
            rules=LiveRules(connection, metrics=metrics),
            match_state=RedisMatchState(connection),
            deliveries=deliveries_queue(connection),
        )
        context.rules.on_change = context._rules_changed
        return context

    def _rules_changed(self, ruleset: RuleSet) -> None:
        # Watched entities come with the rules: re-key the recognizer, keep the loaded models.
        self.enricher = self.enricher.with_watched(ruleset.entities)
        log.info("rules_loaded", subscriptions=len(ruleset.subscriptions),
                 entities=len(ruleset.entities))  # fmt: skip


def install(context: WorkerContext) -> None:
    global _current  # noqa: PLW0603 - the one slot RQ leaves us to pass a context to jobs
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context installed: jobs run inside `tgwatch worker`")
    return _current
