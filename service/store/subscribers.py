"""Subscribers, their subscriptions and delivery settings, kept in Redis beside the rules.

A subscription is one record of the rule set (``service.store.rules.RuleStore``, which alone
writes it), so every change bumps the rules version and reaches the workers' index within
seconds. The record keeps the rule engine's fields and adds ours:

- ``paused`` and ``mute_until`` — what the index obeys: left out while paused, dropped at match
  time until the mute ends (no sweeper: the matching worker compares it with its clock);
- ``notify`` — what delivery gets: ``targets`` with each Telegram chat's settings merged in
  (digest by the subscription's ``mode``, quiet hours), as ``service.core.delivery`` reads them;
- ``targets``, ``user_paused``, ``mode``, ``owner``, ``created_at`` — ours.

A record written by someone else (``tgwatch rules``) lacks our fields; it reads as
``targets = notify`` and ``user_paused = paused``.

Our own keys (constants.SUBSCRIBER_*): ``subscriber:<id>`` HASH (kind, chat_id, settings JSON),
``subscriber:<id>:subs`` SET (owned subscription ids), ``subscribers`` SET and ``chat-subs:<chat>``
SET (subscriptions delivering to a chat, so /digest can rewrite them). They are written in the
same transaction as the records they index.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import redis
import structlog

from service import constants
from service.core.delivery import parse_target
from service.core.schedule import DIGEST_MODES, DeliveryPrefs, QuietHours
from service.redis import text
from service.store.rules import RuleStore, RulesWrite

log = structlog.get_logger(__name__)

# The rules file's rule for ids (service.core.rules): the API and the bot make ids it accepts.
SUBSCRIPTION_ID_RE = re.compile(r"[A-Za-z0-9][\w.\-]*")
MODES = ("auto", "instant", "digest")
# Our fields in a rules record, and the rule engine's fields we rewrite.
_OWN_FIELDS = ("targets", "user_paused", "mode", "mute_until", "owner", "created_at")


class SubscriptionNotFoundError(KeyError):
    """No subscription with that id (for that owner)."""


class SubscriptionExistsError(ValueError):
    """A subscription with that id already exists."""


def telegram_subscriber(chat_id: int) -> str:
    return f"tg:{chat_id}"


def api_subscriber(name: str) -> str:
    return f"api:{name}"


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """A subscriber's delivery settings: digest window and quiet hours."""

    digest: str = "off"
    quiet: QuietHours | None = None

    def __post_init__(self) -> None:
        if self.digest not in DIGEST_MODES:
            raise ValueError(f"digest must be one of {', '.join(DIGEST_MODES)}")

    def prefs(self, mode: str) -> DeliveryPrefs:
        """The delivery preferences of a subscription in ``mode`` delivering to this chat."""
        digest = self.digest
        if mode == "instant":
            digest = "off"
        elif mode == "digest" and digest == "off":
            digest = constants.SUBSCRIPTION_DIGEST_FALLBACK
        tz = self.quiet.tz if self.quiet is not None else "UTC"
        return DeliveryPrefs(digest=digest, quiet=self.quiet, tz=tz)

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "quiet": None if self.quiet is None else self.quiet.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubscriberSettings:
        quiet = data.get("quiet")
        return cls(str(data.get("digest") or "off"), QuietHours.from_dict(quiet) if quiet else None)


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """A subscription as subscribers see it (the ``targets`` they set, not the merged ones)."""

    id: str
    query: str
    name: str = ""
    targets: tuple[dict[str, Any], ...] = ()
    paused: bool = False
    mode: str = "auto"
    mute_until: float | None = None
    owner: str | None = None
    created_at: float = 0.0

    def muted(self, now: float | None = None) -> bool:
        return self.mute_until is not None and self.mute_until > (now or time.time())

    def to_dict(self) -> dict[str, Any]:
        """The public form (API, bot): webhook secrets are never shown."""
        return {
            "id": self.id,
            "name": self.name or self.id,
            "query": self.query,
            "targets": [redact_target(target) for target in self.targets],
            "paused": self.paused,
            "mode": self.mode,
            "mute_until": self.mute_until if self.muted() else None,
            "owner": self.owner,
            "created_at": self.created_at,
        }

    def file_dict(self) -> dict[str, Any]:
        """The rules-file form (secrets included: the file is the operator's own setup)."""
        data: dict[str, Any] = {"id": self.id}
        if self.name and self.name != self.id:
            data["name"] = self.name
        data["query"] = self.query
        if self.paused:
            data["paused"] = True
        if self.targets:
            data["notify"] = [dict(target) for target in self.targets]
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> StoredSubscription:
        targets = data.get("targets", data.get("notify")) or []
        mute = data.get("mute_until")
        return cls(
            id=str(data["id"]),
            query=str(data["query"]),
            name=str(data.get("name") or data["id"]),
            targets=tuple(dict(_plain_target(t)) for t in targets if isinstance(t, dict)),
            paused=bool(data.get("user_paused", data.get("paused", False))),
            mode=str(data.get("mode") or "auto"),
            mute_until=None if mute is None else float(mute),
            owner=data.get("owner"),
            created_at=float(data.get("created_at") or 0.0),
        )


def _plain_target(target: dict[str, Any]) -> dict[str, Any]:
    """A target without the delivery preferences merged into it (those are the chat's)."""
    if "telegram" in target:
        return {"telegram": target["telegram"]}
    return target


def redact_target(target: dict[str, Any]) -> dict[str, Any]:
    """A target safe to show: a webhook's secrets replaced by a marker."""
    hook = target.get("webhook")
    if isinstance(hook, dict):
        return {"webhook": {"url": hook.get("url"), "secret": "***"}}
    return dict(target)


def validate_targets(targets: Iterable[Any]) -> list[dict[str, Any]]:
    """Targets checked with the delivery module's parser; ValueError names the bad one."""
    checked: list[dict[str, Any]] = []
    for number, target in enumerate(targets, 1):
        try:
            parse_target(target)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"target {number}: {exc}") from None
        checked.append(_plain_target(target))
    return checked


@dataclass
class Subscriber:
    id: str
    kind: str
    chat_id: int | None = None
    settings: SubscriberSettings = field(default_factory=SubscriberSettings)


def new_subscription_id() -> str:
    """A short id a person can type (``/unwatch s7k2q9``); unique among 36^6 ids."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "s" + "".join(secrets.choice(alphabet) for _ in range(6))


class SubscriberStore:
    """Reads and writes subscribers and subscriptions; one per process, on its Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.rules = RuleStore(client)

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
        """Subscriptions a Telegram chat owns or receives alerts of, by id."""
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(_owned_key(telegram_subscriber(chat_id)))
        pipe.smembers(_chat_key(chat_id))
        owned, delivered = pipe.execute()
        ids = sorted({text(i) for i in owned} | {text(i) for i in delivered})
        return [sub for sub in self._get_many(ids) if _reaches(sub, chat_id)]

    def find_for_chat(self, subscription_id: str, chat_id: int) -> StoredSubscription | None:
        """The subscription if the chat owns it or receives its alerts, else None."""
        sub = self.get(subscription_id)
        return sub if sub is not None and _reaches(sub, chat_id) else None

    def create(self, sub: StoredSubscription) -> StoredSubscription:
        """Add a new subscription; SubscriptionExistsError when the id is taken."""
        if self.rules.exists(sub.id):
            raise SubscriptionExistsError(sub.id)
        sub = replace(sub, created_at=sub.created_at or time.time())
        self.write([sub], previous={sub.id: None})
        return sub

    def put(self, sub: StoredSubscription) -> StoredSubscription:
        """Create or replace a subscription (keeping its creation time)."""
        old = self.get(sub.id)
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

    def unwatch_for_chat(self, subscription_id: str, chat_id: int) -> bool:
        """Stop a chat's alerts of a subscription: delete it when the chat owns it or is its only
        target, else take the chat out of its targets. False when it was not the chat's."""
        sub = self.find_for_chat(subscription_id, chat_id)
        if sub is None:
            return False
        others = tuple(t for t in sub.targets if t.get("telegram") not in (chat_id, str(chat_id)))
        if sub.owner == telegram_subscriber(chat_id) or not others:
            self.delete(sub.id)
        else:
            self.write([replace(sub, targets=others)], previous={sub.id: sub})
        return True

    def set_paused(self, ids: Iterable[str], paused: bool, owner: str | None = None) -> list[str]:
        """Pause or resume the given subscriptions; returns the ids that changed."""
        changed = [
            replace(sub, paused=paused)
            for sub in (self.require(i, owner) for i in ids)
            if sub.paused != paused
        ]
        self.write(changed)
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
        notify: list[dict[str, Any]] = []
        for target in sub.targets:
            chat = target.get("telegram")
            if chat is not None:
                prefs = chats.get(int(chat), SubscriberSettings()).prefs(sub.mode)
                notify.append({**target, **prefs.to_dict()} if prefs.holds else dict(target))
            else:
                notify.append(dict(target))
        return {
            "id": sub.id,
            "name": sub.name or sub.id,
            "query": sub.query,
            "paused": sub.paused,
            "notify": notify,
            "targets": [dict(target) for target in sub.targets],
            "user_paused": sub.paused,
            "mode": sub.mode,
            "mute_until": sub.mute_until if sub.muted() else None,
            "owner": sub.owner,
            "created_at": sub.created_at,
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


def _unindex(batch: RulesWrite, old: StoredSubscription) -> None:
    if old.owner is not None:
        batch.pipe.srem(_owned_key(old.owner), old.id)
    for chat in _chats(old):
        batch.pipe.srem(_chat_key(chat), old.id)


def _reaches(sub: StoredSubscription, chat_id: int) -> bool:
    """The chat owns the subscription or receives its alerts."""
    return sub.owner == telegram_subscriber(chat_id) or chat_id in _chats(sub)


def _chats(sub: StoredSubscription) -> list[int]:
    return [int(t["telegram"]) for t in sub.targets if t.get("telegram") is not None]


def _owned_key(owner: str) -> str:
    return f"{constants.SUBSCRIBER_PREFIX}{owner}:subs"


def _chat_key(chat_id: int) -> str:
    return f"{constants.SUBSCRIBER_CHAT_SUBS_PREFIX}{chat_id}"
