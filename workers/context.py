"""The one per-process context of a worker: built once at start-up, handed to every job.

RQ calls job functions by name with only their payload, so the worker's composition root
(``workers.runner.build_worker``) installs one ``WorkerContext`` per process with ``install``
and jobs read it with ``current``; nothing here is created at import time. It has two parts:
``stage`` (the post stage: stores, the analyzers, the compiled rules; only in workers that serve
the posts queue) and ``delivery`` (stores, senders and their clients).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from service import constants
from service.analyzers import enricher_from_settings
from service.config import Settings
from service.core.enrich import Enricher
from service.core.model import Enrichment
from service.core.post import Post
from service.core.query.index import RuleIndex
from service.core.query.match import Match
from service.core.rules import RuleSet, Subscription, subscription_kind
from service.metrics import Metrics
from service.store.matches import RedisMatchState
from service.store.posts import PostStore
from service.store.rules import RuleCache
from service.store.subscribers import SubscriberStore
from workers.delivery.context import DeliveryContext

log = structlog.get_logger(__name__)

_current: WorkerContext | None = None

# The matching budget, in CPU time. Matching a post normally takes well under a millisecond; one
# that takes longer than this has a costly rule in the set (a regex like /.{500}x/i costs ~15-40
# ms a post), which would slow every post of every subscriber. Its rules are then timed one by
# one.
MATCH_BUDGET_SECONDS = 0.05
# A subscription whose query took this long on that post is set aside (paused, with the reason):
# a thousand times what a rule normally costs, so a legitimate one is never caught.
RULE_BUDGET_SECONDS = 0.005
SET_ASIDE_REASON = "over_budget"


@dataclass(frozen=True)
class _Rules:
    """One compiled rule set: the index and the subscriptions behind it (swapped as a whole)."""

    index: RuleIndex
    subscriptions: dict[str, Subscription]
    version: int | None


class LiveRules:
    """The compiled index a worker matches with, and the subscriptions behind it.

    ``start`` compiles the rule set (a worker does it before taking its first job) and starts a
    thread that checks the rules' version every second and, when it moved, compiles the new rule
    set there and swaps it in whole: a job never waits for a compile (it shares the interpreter
    with it, so it runs slower meanwhile). ``match`` keeps matching to a budget: a subscription
    that costs too much is dropped from the index at once and, at the end of the batch
    (``set_aside_over_budget``), set aside in Redis through the subscriber store, paused with
    its reason, in one rule-set write.
    """

    def __init__(
        self,
        client: Redis,
        metrics: Metrics,
        *,
        on_change: Callable[[RuleSet], None] | None = None,
        interval: float = constants.RULES_CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.client = client
        self.cache = RuleCache(client, interval=0.0)
        self.metrics = metrics
        self.on_change = on_change
        self.interval = interval
        self._rules: _Rules | None = None
        self._lock = threading.Lock()  # one compile at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._over_budget: dict[str, str] = {}  # subscription id -> why, not yet written

    # --- the rule set ----------------------------------------------------------------------
    def start(self) -> None:
        """Compile now, then follow the rules' version in a background thread."""
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="rules-watch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def refresh(self) -> bool:
        """Compile the rule set if its version moved (or none is compiled); True when swapped."""
        with self._lock:
            started = time.perf_counter()
            index = self.cache.get()
            if self._rules is not None and self.cache.version == self._rules.version:
                return False
            ruleset = self.cache.ruleset
            if self.on_change is not None:
                self.on_change(ruleset)
            subscriptions = {sub.id: sub for sub in ruleset.subscriptions}
            self._rules = _Rules(index, subscriptions, self.cache.version)
            self.metrics.set_rules(
                len(ruleset.subscriptions), len(index), time.perf_counter() - started
            )
            return True

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as exc:  # Redis away, say: the current index stays; next tick
                log.warning("rules_refresh_failed", error=type(exc).__name__)

    def _current(self) -> _Rules:
        rules = self._rules
        if rules is None:  # not started (a test, a tool): compile on first use
            self.refresh()
            rules = self._rules
            assert rules is not None
        return rules

    def current(self) -> RuleIndex:
        return self._current().index

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self._current().subscriptions

    def kind(self, subscription_id: str) -> str:
        """What a subscription watches (``keyword``, ``entity``, ``topic``), for metrics."""
        sub = self._current().subscriptions.get(subscription_id)
        return "keyword" if sub is None else subscription_kind(sub.query)

    # --- matching within the budget ----------------------------------------------------------
    def match(self, post: Post, enrichment: Enrichment, now: float) -> list[Match]:
        index = self._current().index
        started = time.thread_time()  # CPU time: a pause of the process is not the rules'
        found = index.match(post, enrichment, now)
        if time.thread_time() - started > MATCH_BUDGET_SECONDS:
            self._check_budget(index, post, enrichment)
        return found

    def _check_budget(self, index: RuleIndex, post: Post, enrichment: Enrichment) -> None:
        costly = index.costly(post, enrichment, RULE_BUDGET_SECONDS)
        if not costly:
            return
        index.drop([sub_id for sub_id, _ in costly])
        for sub_id, seconds in costly:
            reason = f"over budget: matching took {seconds * 1000:.0f} ms on post {post.key}"
            self._over_budget.setdefault(sub_id, reason)
            log.warning("subscription_over_budget", subscription=sub_id, post=post.key,
                        ms=round(seconds * 1000, 1))  # fmt: skip

    def set_aside_over_budget(self) -> int:
        """Set aside (pause, with the reason) the subscriptions found over budget since the last
        call: one write of the rule set, one version bump. Returns how many."""
        if not self._over_budget:
            return 0
        pending, self._over_budget = self._over_budget, {}
        try:
            done = SubscriberStore(self.client).set_aside(pending)
        except RedisError as exc:  # kept for the next batch (the index already left them out)
            self._over_budget = {**pending, **self._over_budget}
            log.warning("set_aside_failed", error=type(exc).__name__, subscriptions=len(pending))
            return 0
        if done:
            self.metrics.subscriptions_set_aside(SET_ASIDE_REASON, len(done))
            log.warning("subscriptions_set_aside", subscriptions=done, reason=SET_ASIDE_REASON)
        return len(done)


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
        """The context of a worker process; with the post stage, its rule set is compiled here,
        before the worker takes a job, and followed from then on in the background."""
        delivery = DeliveryContext.from_settings(settings, connection, metrics, lease)
        stage = None
        if post_stage:
            stage = PostStage.build(settings, connection, metrics, delivery.queue)
            stage.rules.start()
        return cls(settings, connection, metrics, delivery, stage)

    def post_stage(self) -> PostStage:
        if self.stage is None:
            raise RuntimeError("this worker does not serve the posts queue")
        return self.stage

    def close(self) -> None:
        if self.stage is not None:
            self.stage.rules.close()
        self.delivery.close()


def install(context: WorkerContext | None) -> None:
    global _current  # noqa: PLW0603 - the one slot RQ leaves us to pass a context to jobs
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context installed: jobs run inside `tgwatch worker`")
    return _current
