"""The one per-process context of a worker: built once at start-up, handed to every job.

RQ calls job functions by name with only their payload, so the worker's composition root
(``workers.runner.build_worker``) installs one ``WorkerContext`` per process with ``install``
and jobs read it with ``current``; nothing here is created at import time. It has two parts:
``stage`` (the post stage: stores, the analyzers, the compiled rules; only in workers that serve
the posts queue) and ``delivery`` (stores, senders and their clients).
"""

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
from service.core.rules import RuleSet, Subscription, subscription_kind
from service.metrics import Metrics
from service.store.matches import RedisMatchState
from service.store.posts import PostStore
from service.store.rules import RuleCache
from workers.delivery.context import DeliveryContext

log = structlog.get_logger(__name__)

_current: WorkerContext | None = None


class LiveRules:
    """The compiled index plus the subscriptions and watched entities behind it, refreshed when
    the rules' version in Redis moves (checked at most every second, compiled only on change)."""

    def __init__(
        self,
        client: Redis,
        metrics: Metrics,
        *,
        on_change: Callable[[RuleSet], None] | None = None,
    ) -> None:
        self.cache = RuleCache(client)
        self.metrics = metrics
        self.on_change = on_change
        self.subscriptions: dict[str, Subscription] = {}
        self.kinds: dict[str, str] = {}
        self._version: int | None = None

    def current(self) -> RuleIndex:
        started = time.perf_counter()
        index = self.cache.get()
        if self.cache.version != self._version:
            ruleset = self.cache.ruleset
            self.subscriptions = {sub.id: sub for sub in ruleset.subscriptions}
            self.kinds = {sub.id: subscription_kind(sub.query) for sub in ruleset.subscriptions}
            self._version = self.cache.version
            if self.on_change is not None:
                self.on_change(ruleset)
            self.metrics.set_rules(
                len(ruleset.subscriptions), len(index), time.perf_counter() - started
            )
        return index


@dataclass
class PostStage:
    """What the post stage needs: stores, the analyzers and the compiled rules."""

    redis: Redis
    metrics: Metrics
    posts: PostStore
    enricher: Enricher
    rules: LiveRules
    match_state: RedisMatchState
    deliveries: Queue
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def build(
        cls, settings: Settings, connection: Redis, metrics: Metrics, deliveries: Queue
    ) -> PostStage:
        stage = cls(
            redis=connection,
            metrics=metrics,
            posts=PostStore(connection),
            enricher=enricher_from_settings(settings),
            rules=LiveRules(connection, metrics),
            match_state=RedisMatchState(connection),
            deliveries=deliveries,
        )
        stage.rules.on_change = stage._rules_changed
        return stage

    def _rules_changed(self, ruleset: RuleSet) -> None:
        # Watched entities come with the rules: re-key the recognizer, keep the loaded models.
        self.enricher = self.enricher.with_watched(ruleset.entities)
        log.info("rules_loaded", subscriptions=len(ruleset.subscriptions),
                 entities=len(ruleset.entities))  # fmt: skip


@dataclass
class WorkerContext:
    """Everything a job of this process needs."""

    settings: Settings
    redis: Redis
    metrics: Metrics
    delivery: DeliveryContext
    stage: PostStage | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        connection: Redis,
        metrics: Metrics,
        *,
        post_stage: bool = True,
        lease: str | None = None,
    ) -> WorkerContext:
        delivery = DeliveryContext.from_settings(settings, connection, metrics, lease)
        stage = None
        if post_stage:
            stage = PostStage.build(settings, connection, metrics, delivery.queue)
        return cls(settings, connection, metrics, delivery, stage)

    def post_stage(self) -> PostStage:
        if self.stage is None:
            raise RuntimeError("this worker does not serve the posts queue")
        return self.stage

    def close(self) -> None:
        self.delivery.close()


def install(context: WorkerContext | None) -> None:
    global _current  # noqa: PLW0603 - the one slot RQ leaves us to pass a context to jobs
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context installed: jobs run inside `tgwatch worker`")
    return _current
