"""Which matches of a post version become alerts: the edit and duplicate rules, as pure code.

- An edited version alerts only for subscriptions no earlier version of the same post matched
  (``suppressed="edit"`` otherwise; losing a match retracts nothing). A subscription an edit
  newly matches alerts with ``edited_now_matches=True`` — only when an earlier version of the
  post was processed here: a post first seen already edited (a backfill, an export, a replay)
  alerts as a plain new post, whatever its edit flag says.
- A post whose normalized text is identical to one that already alerted the same subscription
  is suppressed for it (``suppressed="duplicate"``, ``duplicate_of`` names the first post):
  forwarded copies. Posts without text (media only) are never duplicates of each other.

The state those rules read is a ``MatchState``: Redis in the workers (``service.store.matches``),
``InMemoryMatchState`` in backtests and tests. ``decide`` is pure; ``process`` reads, decides and
records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from service.core.model import Alert, Enrichment
from service.core.post import Post
from service.core.query.match import Match
from service.core.text import words


def text_key(text: str) -> str | None:
    """The identity of a text for duplicate detection: a hash of its normalized words, so
    copies that differ only in case, punctuation, emoji or spacing are the same; None when the
    text has no words at all."""
    return words_key(words(text))


def words_key(norms: Iterable[str]) -> str | None:
    """``text_key`` of a text already tokenized: ``norms`` are its normalized words in order
    (``Token.norm``). The worker computes it only for posts that matched something."""
    joined = " ".join(norms)
    if not joined:
        return None
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class PriorState:
    """What earlier posts left behind, as far as one post version is concerned."""

    # Subscriptions some earlier version of this post matched.
    matched_before: frozenset[str] = frozenset()
    # Subscription id -> key of the post whose identical text first alerted it.
    alerted_by: Mapping[str, str] = field(default_factory=dict)
    # An earlier version of this post was processed (stores that know it say so; one that
    # matched something is known from ``matched_before`` either way).
    earlier_version: bool = False

    @property
    def seen_before(self) -> bool:
        return self.earlier_version or bool(self.matched_before)


class MatchState(Protocol):
    """Where match state lives. ``prior`` reads what ``decide`` needs; ``record`` stores the
    outcome and returns the alerts as finally decided (a store shared by several workers may
    turn an alert into a duplicate when another worker recorded the same text first)."""

    def prior(
        self, post_key: str, text_key: str | None, subscription_ids: Collection[str]
    ) -> PriorState: ...

    def record(
        self,
        post_key: str,
        text_key: str | None,
        alerts: Sequence[Alert],
        version_key: str | None = None,
    ) -> list[Alert]:
        """Store the outcome; a store that keeps decisions for retries (``version_key``) keeps
        them in the same write, so a crash can never leave an alert recorded but undelivered."""
        ...


def decide(
    post: Post,
    matches: Sequence[Match],
    prior: PriorState,
    *,
    enrichment: Enrichment | None = None,
    now: float = 0.0,
    post_data: dict[str, Any] | None = None,
    enrichment_data: dict[str, Any] | None = None,
) -> list[Alert]:
    """One Alert per match, with ``suppressed``/``duplicate_of``/``edited_now_matches`` set.
    ``post_data`` and ``enrichment_data`` are the JSON forms of the post and its enrichment
    when the caller already has them (every alert of the post shares them)."""
    if post_data is None:
        post_data = post.to_dict()
    if enrichment_data is None:
        enrichment_data = enrichment.to_dict() if enrichment is not None else {}
    alerts = []
    for match in matches:
        suppressed: str | None = None
        duplicate_of: str | None = None
        first = prior.alerted_by.get(match.subscription_id)
        if match.subscription_id in prior.matched_before:
            suppressed = "edit"
        elif first is not None and first != post.key:
            suppressed, duplicate_of = "duplicate", first
        alerts.append(
            Alert(
                subscription_id=match.subscription_id,
                post=post_data,
                highlights=match.highlights,
                suppressed=suppressed,
                duplicate_of=duplicate_of,
                edited_now_matches=prior.seen_before and suppressed is None,
                enrichment=enrichment_data,
                matched_at=now,
            )
        )
    return alerts


def process(
    post: Post,
    matches: Sequence[Match],
    state: MatchState,
    *,
    enrichment: Enrichment | None = None,
    now: float = 0.0,
) -> list[Alert]:
    """Read the prior state, decide, record; returns every alert (suppressed ones included)."""
    key = text_key(post.text)
    ids = [match.subscription_id for match in matches]
    prior = state.prior(post.key, key, ids)
    alerts = decide(post, matches, prior, enrichment=enrichment, now=now)
    return state.record(post.key, key, alerts, post.version_key)


class InMemoryMatchState:
    """Match state in dictionaries: for backtests (one process, one pass) and tests."""

    def __init__(self, *, keep_stream: bool = True) -> None:
        self.matched: dict[str, set[str]] = {}
        self.alerted: dict[tuple[str, str], str] = {}
        self.stream: list[Alert] = []  # the alerts that went out, unless ``keep_stream`` is off
        self.keep_stream = keep_stream
        self.processed: set[str] = set()

    def prior(
        self, post_key: str, text_key: str | None, subscription_ids: Collection[str]
    ) -> PriorState:
        alerted: dict[str, str] = {}
        if text_key is not None:
            for sub in subscription_ids:
                first = self.alerted.get((sub, text_key))
                if first is not None:
                    alerted[sub] = first
        earlier = post_key in self.processed
        return PriorState(frozenset(self.matched.get(post_key, ())), alerted, earlier)

    def record(
        self,
        post_key: str,
        text_key: str | None,
        alerts: Sequence[Alert],
        version_key: str | None = None,
    ) -> list[Alert]:
        self.processed.add(post_key)
        final: list[Alert] = []
        for decided in alerts:
            alert = decided
            self.matched.setdefault(post_key, set()).add(alert.subscription_id)
            if alert.suppressed is None and text_key is not None:
                first = self.alerted.setdefault((alert.subscription_id, text_key), post_key)
                if first != post_key:
                    alert = replace(alert, suppressed="duplicate", duplicate_of=first)
            if alert.suppressed is None and self.keep_stream:
                self.stream.append(alert)
            final.append(alert)
        return final


def summary(alerts: Sequence[Alert]) -> dict[str, Any]:
    """Counts for logs and reports: alerts sent and suppressed, by reason."""
    counts: dict[str, Any] = {"alerts": 0, "edit": 0, "duplicate": 0}
    for alert in alerts:
        counts["alerts" if alert.suppressed is None else alert.suppressed] += 1
    return counts
