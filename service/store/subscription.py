"""A subscription as its subscribers see it, and who owns it: plain data, no Redis.

An owner is ``tg:<chat id>`` (a bot chat), ``api:<name>`` (an API key's owner) or None (the
operator: rules files, the CLI). A tenant's ids are its own: the API stores a subscription a
non-admin key calls ``lavrov`` as ``lavrov~<tag of its owner>`` (``scoped_id``), so two tenants
never collide, a conflict names only the tenant's own ids, and ``public_id`` gives the tenant
its name back. Bot ids are random and operators' ids are their own choice, both unscoped.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from service import constants
from service.core.delivery import validate_target
from service.core.schedule import DIGEST_MODES, DeliveryPrefs, QuietHours
from service.core.targets import STRICT, TargetPolicy

# The ids a subscriber may choose (the rules file's rule, without the "~" that scopes them).
SUBSCRIPTION_ID_RE = re.compile(r"[A-Za-z0-9][\w.\-]{0,63}")
SCOPE_SEPARATOR = "~"
MODES = ("auto", "instant", "digest")


class SubscriptionNotFoundError(KeyError):
    """No subscription with that id (for that owner)."""


class SubscriptionExistsError(ValueError):
    """A subscription with that id already exists."""


def telegram_subscriber(chat_id: int) -> str:
    return f"tg:{chat_id}"


def api_subscriber(name: str) -> str:
    return f"api:{name}"


def owner_tag(owner: str) -> str:
    """A short stable tag of an owner, for its scoped ids (it reveals nothing of the owner)."""
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def scoped_id(public: str, owner: str) -> str:
    """The stored id of the subscription ``owner`` calls ``public``."""
    return f"{public}{SCOPE_SEPARATOR}{owner_tag(owner)}"


def public_id(subscription_id: str, owner: str | None) -> str:
    """The id ``owner`` knows a stored subscription by (its scope taken off)."""
    if owner is not None:
        suffix = SCOPE_SEPARATOR + owner_tag(owner)
        if subscription_id.endswith(suffix):
            return subscription_id[: -len(suffix)]
    return subscription_id


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
    set_aside: str | None = None  # why a worker paused it (over its budget), if it did

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
            "set_aside": self.set_aside,
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
            targets=tuple(dict(plain_target(t)) for t in targets if isinstance(t, dict)),
            paused=bool(data.get("user_paused", data.get("paused", False))),
            mode=str(data.get("mode") or "auto"),
            mute_until=None if mute is None else float(mute),
            owner=data.get("owner"),
            created_at=float(data.get("created_at") or 0.0),
            set_aside=data.get("set_aside") or None,
        )


def plain_target(target: dict[str, Any]) -> dict[str, Any]:
    """A target as its subscriber set it: without the chat's delivery preferences and the
    owner the store merges into the record's ``notify``."""
    if "telegram" in target:
        return {"telegram": target["telegram"]}
    if "webhook" in target:
        return {"webhook": target["webhook"]}
    return target


def redact_target(target: dict[str, Any]) -> dict[str, Any]:
    """A target safe to show: a webhook's secrets replaced by a marker."""
    hook = target.get("webhook")
    if isinstance(hook, dict):
        return {"webhook": {"url": hook.get("url"), "secret": "***"}}
    return dict(target)


def validate_targets(targets: Iterable[Any], policy: TargetPolicy = STRICT) -> list[dict[str, Any]]:
    """New targets checked (``service.core.delivery.validate_target``: the URL, its address and
    the secrets under ``policy``), in their plain form; ValueError names the bad one, never its
    URL or secret. Anything unexpected in a target is an error of that target."""
    checked: list[dict[str, Any]] = []
    for number, target in enumerate(targets, 1):
        try:
            checked.append(validate_target(target, policy))
        except Exception as exc:  # the item boundary: any failure is this target's own
            reason = str(exc) if isinstance(exc, ValueError) else "not a valid target"
            raise ValueError(f"target {number}: {reason}") from None
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
