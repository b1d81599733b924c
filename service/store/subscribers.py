"""Subscribers, their subscriptions and delivery settings, kept in Redis beside the rules.

A subscription is one record of the rule set (``service.store.rules.RuleStore``, which alone
writes it), so every change bumps the rules version and reaches the workers' index within
seconds. The record keeps the rule engine's fields and adds ours:

- ``paused`` and ``mute_until`` — what the index obeys: left out while paused, dropped at match
  time until the mute ends (no sweeper: the matching worker compares it with its clock);
- ``notify`` — what delivery gets: ``targets`` with each Telegram chat's settings merged in
  (digest by the subscription's ``mode``, quiet hours) and the subscription's ``owner`` on every
  target, as ``service.core.delivery`` reads them (a webhook's log is per owner and URL);
- ``targets``, ``user_paused``, ``mode``, ``owner``, ``created_at`` — ours;
- ``set_aside`` — why a worker paused it (its matching cost more than the workers' budget);
  it stays paused until its owner resumes it or changes its query.

A record written by someone else (``tgwatch rules``) lacks our fields; it reads as
``targets = notify`` and ``user_paused = paused``.

Tenancy lives here: every subscription a subscriber makes has its ``owner``; a chat acts only on
the subscriptions it owns, and of a tenant's subscription delivering to it may only take itself
out (``unwatch_for_chat``); with ``limits`` (the API and the bot) an owner has at most so many
subscriptions and regex terms (``QuotaError``).

Our own keys (constants.SUBSCRIBER_*): ``subscriber:<id>`` HASH (kind, chat_id, settings JSON),
``subscriber:<id>:subs`` SET (owned subscription ids), ``subscribers`` SET and ``chat-subs:<chat>``
SET (subscriptions delivering to a chat, so /digest can rewrite them). They are written in the
same transaction as the records they index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import redis
import structlog

from service import constants
from service.core.query.budget import regex_terms
from service.core.query.parser import QueryError, parse
from service.redis import text
from service.store.links import ChatLinks
from service.store.rules import RuleStore, RulesWrite
from service.store.subscription import (
    MODES,
    SUBSCRIPTION_ID_RE,
    StoredSubscription,
    Subscriber,
    SubscriberSettings,
    SubscriptionExistsError,
    SubscriptionNotFoundError,
    api_subscriber,
    new_subscription_id,
    plain_target,
    public_id,
    redact_target,
    scoped_id,
    telegram_subscriber,
    validate_targets,
)

__all__ = [
    "MODES",
    "SUBSCRIPTION_ID_RE",
    "OwnerLimits",
    "QuotaError",
    "StoredSubscription",
    "Subscriber",
    "SubscriberSettings",
    "SubscriberStore",
    "SubscriptionExistsError",
    "SubscriptionNotFoundError",
    "api_subscriber",
    "new_subscription_id",
    "public_id",
    "redact_target",
    "scoped_id",
    "telegram_subscriber",
    "validate_targets",
]

log = structlog.get_logger(__name__)


class QuotaError(ValueError):
    """An owner is at one of its limits (the message names the limit and its setting)."""


@dataclass(frozen=True, slots=True)
class OwnerLimits:
    """What one owner may have (TGWATCH_LIMIT_SUBSCRIPTIONS, TGWATCH_LIMIT_REGEXES)."""

    subscriptions: int = constants.OWNER_SUBSCRIPTIONS_MAX
    regexes: int = constants.OWNER_REGEXES_MAX


def regex_count(query: str) -> int:
    """How many regex terms a query holds (0 when it does not parse)."""
    if "/" not in query:
        return 0
    try:
        return len(regex_terms(parse(query)))
    except QueryError:
        return 0


class SubscriberStore:
    """Reads and writes subscribers and subscriptions; one per process, on its Redis client."""

    def __init__(self, client: redis.Redis, limits: OwnerLimits | None = None) -> None:
        self.client = client
        self.rules = RuleStore(client)
        self.links = ChatLinks(client)
        self.limits = limits

    # --- subscribers ---------------------------------------------------------------------------
    def ensure_subscriber(self, subscriber_id: str, kind: str, chat_id: int | None = None) -> None:
        key = constants.SUBSCRIBER_PREFIX + subscriber_id
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(constants.SUBSCRIBERS_KEY, subscriber_id)
        pipe.hsetnx(key, "kind", kind)
        if chat_id is not None:
            pipe.hsetnx(key, "chat_id", str(chat_id))
        pipe.hsetnx(key, "created_at", f"{time.time():.3f}")
        pipe.execute()

    def subscriber(self, subscriber_id: str) -> Subscriber | None:
        raw = self.client.hgetall(constants.SUBSCRIBER_PREFIX + subscriber_id)
        if not raw:
            return None
        data = {text(k): text(v) for k, v in raw.items()}
        chat = data.get("chat_id")
        settings = SubscriberSettings.from_dict(json.loads(data.get("settings") or "{}"))
        return Subscriber(
            subscriber_id, data.get("kind", "?"), int(chat) if chat else None, settings
        )

    def settings_for_chat(self, chat_id: int) -> SubscriberSettings:
        return self._chat_settings([chat_id])[chat_id]

    def set_settings(self, chat_id: int, settings: SubscriberSettings) -> int:
        """Save a Telegram chat's settings and re-merge them into every subscription delivering
        to it; returns how many subscriptions were rewritten."""
        subscriber_id = telegram_subscriber(chat_id)
        self.ensure_subscriber(subscriber_id, "telegram", chat_id)
        self.client.hset(
            constants.SUBSCRIBER_PREFIX + subscriber_id, "settings", json.dumps(settings.to_dict())
        )
        ids = sorted(text(i) for i in self.client.smembers(_chat_key(chat_id)))
        changed = self._get_many(ids)
        self.write(changed)
        return len(changed)

    # --- subscriptions -------------------------------------------------------------------------
    def get(self, subscription_id: str, owner: str | None = None) -> StoredSubscription | None:
        record = self.rules.record(subscription_id)
        if record is None:
            return None
        sub = StoredSubscription.from_record(record)
        if owner is not None and sub.owner != owner:
            return None
        return sub

    def _get_many(self, ids: list[str]) -> list[StoredSubscription]:
        return [StoredSubscription.from_record(record) for record in self.rules.records(ids)]

    def require(self, subscription_id: str, owner: str | None = None) -> StoredSubscription:
        sub = self.get(subscription_id, owner)
        if sub is None:
            raise SubscriptionNotFoundError(subscription_id)
        return sub

    def all(self) -> list[StoredSubscription]:
        subs = [StoredSubscription.from_record(record) for record in self.rules.records()]
        return sorted(subs, key=lambda sub: sub.id)

    def subscriptions(self, owner: str | None = None) -> list[StoredSubscription]:
        """Every subscription of ``owner`` (all of them when None), by id."""
        if owner is None:
            return self.all()
        ids = sorted(text(i) for i in self.client.smembers(_owned_key(owner)))
        return [sub for sub in self._get_many(ids) if sub.owner == owner]

    def for_chat(self, chat_id: int) -> list[StoredSubscription]:
        """The subscriptions a Telegram chat owns, by id."""
        return self.subscriptions(telegram_subscriber(chat_id))

    def delivered_to_chat(self, chat_id: int) -> list[StoredSubscription]:
        """Subscriptions of others (tenants it linked to, the operator) delivering to a chat."""
        ids = sorted(text(i) for i in self.client.smembers(_chat_key(chat_id)))
        owner = telegram_subscriber(chat_id)
        return [sub for sub in self._get_many(ids) if sub.owner != owner and chat_id in _chats(sub)]

    def find_for_chat(self, subscription_id: str, chat_id: int) -> StoredSubscription | None:
        """The subscription if the chat owns it, else None (whoever else's it is)."""
        return self.get(subscription_id, telegram_subscriber(chat_id))

    def _quota(self, sub: StoredSubscription, previous: StoredSubscription | None) -> None:
        """QuotaError when writing ``sub`` takes its owner over a limit."""
        if self.limits is None or sub.owner is None:
            return
        if previous is None:
            count = int(self.client.scard(_owned_key(sub.owner)))
            if count >= self.limits.subscriptions:
                raise QuotaError(
                    f"at most {self.limits.subscriptions} subscriptions per subscriber "
                    "(TGWATCH_LIMIT_SUBSCRIPTIONS)"
                )
        added = regex_count(sub.query)
        if added > (regex_count(previous.query) if previous is not None else 0):
            others = self.subscriptions(sub.owner)
            total = added + sum(regex_count(o.query) for o in others if o.id != sub.id)
            if total > self.limits.regexes:
                raise QuotaError(
                    f"at most {self.limits.regexes} regexes across a subscriber's "
                    "subscriptions (TGWATCH_LIMIT_REGEXES)"
                )

    def create(self, sub: StoredSubscription) -> StoredSubscription:
        """Add a new subscription; SubscriptionExistsError when the id is taken, QuotaError
        when its owner is at a limit."""
        if self.rules.exists(sub.id):
            raise SubscriptionExistsError(sub.id)
        self._quota(sub, None)
        sub = replace(sub, created_at=sub.created_at or time.time())
        self.write([sub], previous={sub.id: None})
        return sub

    def put(self, sub: StoredSubscription) -> StoredSubscription:
        """Create or replace a subscription (keeping its creation time)."""
        old = self.get(sub.id)
        self._quota(sub, old)
        created = old.created_at if old is not None else time.time()
        sub = replace(sub, created_at=sub.created_at or created)
        self.write([sub], previous={sub.id: old})
        return sub

    def update(
        self, subscription_id: str, owner: str | None = None, **changes: Any
    ) -> StoredSubscription:
        old = self.require(subscription_id, owner)
        new = replace(old, **changes)
        self.write([new], previous={old.id: old})
        return new

    def delete(self, subscription_id: str, owner: str | None = None) -> StoredSubscription:
        old = self.require(subscription_id, owner)
        self.delete_many([old])
        return old

    def delete_many(self, subs: list[StoredSubscription], batch: RulesWrite | None = None) -> None:
        """Remove subscriptions and their indexes (in ``batch`` when given, else at once)."""
        if batch is None:
            with self.rules.write() as own:
                self.delete_many(subs, own)
            return
        batch.delete_subscriptions(*(sub.id for sub in subs))
        for sub in subs:
            _unindex(batch, sub)

    def unwatch_for_chat(self, subscription_id: str, chat_id: int) -> str | None:
        """Stop a chat's alerts of a subscription: ``"deleted"`` when the chat owns it,
        ``"left"`` when it is another's delivering to the chat (only the chat is taken out of
        its targets: the owner's other targets go on), None when it is neither."""
        sub = self.get(subscription_id)
        if sub is None:
            return None
        if sub.owner == telegram_subscriber(chat_id):
            self.delete(sub.id)
            return "deleted"
        if chat_id not in _chats(sub):
            return None
        self.write([_without_chat(sub, chat_id)], previous={sub.id: sub})
        return "left"

    def unlink_chat(self, owner: str, chat_id: int) -> bool:
        """Undo a chat's link to a tenant: the link goes, and the chat leaves every one of the
        tenant's subscriptions, in one transaction. False when they were not linked."""
        if not self.links.linked(owner, chat_id):
            return False
        subs = [sub for sub in self.subscriptions(owner) if chat_id in _chats(sub)]
        with self.rules.write() as batch:
            self.links.unlink(owner, chat_id, batch.pipe)
            changed = [_without_chat(sub, chat_id) for sub in subs]
            self.write(changed, {sub.id: sub for sub in subs}, batch)
        return True

    def set_paused(self, ids: Iterable[str], paused: bool, owner: str | None = None) -> list[str]:
        """Pause or resume the given subscriptions; returns the ids that changed. Resuming one
        a worker set aside takes it back (and sets it aside again if it still costs too much)."""
        changed = [
            replace(sub, paused=paused, set_aside=sub.set_aside if paused else None)
            for sub in (self.require(i, owner) for i in ids)
            if sub.paused != paused or (not paused and sub.set_aside)
        ]
        self.write(changed)
        return [sub.id for sub in changed]

    def set_aside(self, reasons: dict[str, str]) -> list[str]:
        """Pause subscriptions the workers cannot afford (``reasons``: id -> why), keeping the
        reason, in one write of the rule set (one version bump, one recompile); returns the ids
        set aside (those that still exist and were not already)."""
        found = self._get_many(sorted(reasons))
        changed = [replace(sub, set_aside=reasons[sub.id]) for sub in found if not sub.set_aside]
        self.write(changed, previous={sub.id: sub for sub in found})
        return [sub.id for sub in changed]

    def mute(self, subscription_id: str, seconds: float, owner: str | None = None) -> float:
        """Mute for ``seconds``: the workers drop its matches until then; it ends by itself."""
        until = time.time() + seconds
        self.update(subscription_id, owner, mute_until=until)
        return until

    # --- the record ---------------------------------------------------------------------------
    def _chat_settings(self, chats: Iterable[int]) -> dict[int, SubscriberSettings]:
        """The settings of Telegram chats, read in one round trip."""
        wanted = sorted(set(chats))
        pipe = self.client.pipeline(transaction=False)
        for chat in wanted:
            pipe.hget(constants.SUBSCRIBER_PREFIX + telegram_subscriber(chat), "settings")
        found: dict[int, SubscriberSettings] = {}
        for chat, raw in zip(wanted, pipe.execute() if wanted else [], strict=True):
            data = json.loads(raw) if raw else {}
            found[chat] = SubscriberSettings.from_dict(data)
        return found

    def record(
        self, sub: StoredSubscription, chats: dict[int, SubscriberSettings] | None = None
    ) -> dict[str, Any]:
        """The rule-set record of ``sub``: the rule engine's fields, derived, plus ours."""
        chats = chats if chats is not None else self._chat_settings(_chats(sub))
        owned = {"owner": sub.owner} if sub.owner is not None else {}
        notify: list[dict[str, Any]] = []
        for target in sub.targets:
            chat = target.get("telegram")
            if chat is not None:
                prefs = chats.get(int(chat), SubscriberSettings()).prefs(sub.mode)
                held = prefs.to_dict() if prefs.holds else {}
                notify.append({**plain_target(target), **held, **owned})
            else:
                notify.append({**plain_target(target), **owned})
        return {
            "id": sub.id,
            "name": sub.name or sub.id,
            "query": sub.query,
            "paused": sub.paused or sub.set_aside is not None,
            "notify": notify,
            "targets": [dict(target) for target in sub.targets],
            "user_paused": sub.paused,
            "mode": sub.mode,
            "mute_until": sub.mute_until if sub.muted() else None,
            "owner": sub.owner,
            "created_at": sub.created_at,
            "set_aside": sub.set_aside,
        }

    def write(
        self,
        subs: list[StoredSubscription],
        previous: dict[str, StoredSubscription | None] | None = None,
        batch: RulesWrite | None = None,
    ) -> None:
        """Write records and their indexes: in ``batch`` when given (the caller's transaction),
        else in a transaction of their own with one rules-version bump."""
        if not subs:
            return
        if batch is None:
            with self.rules.write() as own:
                self.write(subs, previous, own)
            return
        for sub in subs:
            if sub.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if previous is None:
            found = {old.id: old for old in self._get_many([sub.id for sub in subs])}
            previous = {sub.id: found.get(sub.id) for sub in subs}
        # A query changed since a worker set the subscription aside is worth another try.
        subs = [_retry_if_changed(sub, previous.get(sub.id)) for sub in subs]
        chats = self._chat_settings(chat for sub in subs for chat in _chats(sub))
        batch.put_subscriptions([self.record(sub, chats) for sub in subs])
        for sub in subs:
            old = previous.get(sub.id)
            if old is not None:
                _unindex(batch, old)
            if sub.owner is not None:
                batch.pipe.sadd(_owned_key(sub.owner), sub.id)
            for chat in _chats(sub):
                batch.pipe.sadd(_chat_key(chat), sub.id)


def _retry_if_changed(
    sub: StoredSubscription, old: StoredSubscription | None
) -> StoredSubscription:
    if sub.set_aside and old is not None and old.query != sub.query:
        return replace(sub, set_aside=None)
    return sub


def _unindex(batch: RulesWrite, old: StoredSubscription) -> None:
    if old.owner is not None:
        batch.pipe.srem(_owned_key(old.owner), old.id)
    for chat in _chats(old):
        batch.pipe.srem(_chat_key(chat), old.id)


def _without_chat(sub: StoredSubscription, chat_id: int) -> StoredSubscription:
    kept = tuple(t for t in sub.targets if t.get("telegram") not in (chat_id, str(chat_id)))
    return replace(sub, targets=kept)


def _chats(sub: StoredSubscription) -> list[int]:
    return [int(t["telegram"]) for t in sub.targets if t.get("telegram") is not None]


def _owned_key(owner: str) -> str:
    return f"{constants.SUBSCRIBER_PREFIX}{owner}:subs"


def _chat_key(chat_id: int) -> str:
    return f"{constants.SUBSCRIBER_CHAT_SUBS_PREFIX}{chat_id}"
