"""What a delivery is, as pure data: targets, delivery jobs, outcomes and the retry policy.

A target is the rules file's ``notify:`` item: ``{"telegram": -1001234}`` or
``{"webhook": {"url": ..., "secret": "whsec_..."}}`` (``secret`` may be a list during a
rotation). A Telegram target may carry the subscriber's delivery preferences (``"digest": "1h"``,
``"quiet": {...}``), and every target the ``"owner"`` of its subscription (the subscriber store
adds it), so a webhook endpoint's identity — its delivery log, its disabled state — is
per (owner, URL) and two tenants with the same URL share nothing. ``validate_target`` is the
stricter check of a target being created or imported (``service.core.targets``);
``parse_target`` only decodes what was stored. A ``DeliveryJob`` is one alert to one target
at one attempt; its JSON form (``to_dict``/``from_dict``) is the RQ job payload. What became of
an attempt is an ``Outcome`` whose ``status`` comes from ``DeliveryStatus``: the senders say it,
the dispatcher acts on it and the metrics count it (``service.metrics`` maps each status to one
label value). Retry timing is ``service.core.retry``'s, shared by Telegram, webhooks and
digests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from service import constants
from service.core.model import Alert
from service.core.schedule import DeliveryPrefs
from service.core.targets import STRICT, TargetPolicy, check_secrets, check_webhook_url


def redact_url(url: str) -> str:
    """A URL safe to log: scheme, host, port and path; no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(malformed url)"
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True, slots=True)
class TelegramTarget:
    chat_id: int
    prefs: DeliveryPrefs = field(default_factory=DeliveryPrefs)
    owner: str | None = None

    @property
    def key(self) -> str:
        return f"tg:{self.chat_id}"

    @property
    def kind(self) -> str:
        return "telegram"

    @property
    def label(self) -> str:
        return f"telegram {self.chat_id}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"telegram": self.chat_id}
        if self.prefs.holds:
            data.update(self.prefs.to_dict())
        if self.owner is not None:
            data["owner"] = self.owner
        return data


def endpoint_id(url: str, owner: str | None = None) -> str:
    """The id of a webhook endpoint: of its URL for the operator's own subscriptions, of
    (owner, URL) for a tenant's, so no two owners ever share a log or a disabled state."""
    material = url if owner is None else f"{owner}\n{url}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secrets: tuple[str, ...]
    owner: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an absolute http(s) URL")
        if not self.secrets or not all(isinstance(s, str) and s for s in self.secrets):
            raise ValueError("webhook needs a secret")

    @property
    def endpoint_id(self) -> str:
        """A stable id of the endpoint (its owner and URL), used in Redis keys and logs."""
        return endpoint_id(self.url, self.owner)

    @property
    def key(self) -> str:
        return f"wh:{self.endpoint_id}"

    @property
    def kind(self) -> str:
        return "webhook"

    @property
    def label(self) -> str:
        return f"webhook {redact_url(self.url)}"

    def __repr__(self) -> str:  # never show the secrets
        return f"WebhookTarget(url={redact_url(self.url)!r}, secrets=<{len(self.secrets)}>)"

    def to_dict(self) -> dict[str, Any]:
        secret: str | list[str] = self.secrets[0] if len(self.secrets) == 1 else list(self.secrets)
        data: dict[str, Any] = {"webhook": {"url": self.url, "secret": secret}}
        if self.owner is not None:
            data["owner"] = self.owner
        return data


DeliveryTarget = TelegramTarget | WebhookTarget


def _chat_id(chat: object) -> int:
    if isinstance(chat, bool) or not isinstance(chat, int | str):
        raise ValueError("telegram target must be a chat id")
    try:
        chat_id = int(chat)
    except ValueError:
        raise ValueError("telegram target must be a numeric chat id") from None
    if not -(2**52) < chat_id < 2**52:
        raise ValueError("telegram target must be a chat id")
    return chat_id


def parse_target(data: dict[str, Any]) -> DeliveryTarget:
    """A target from its stored ``notify:`` form; ValueError (without the secret) when
    malformed. Structural only: new targets go through ``validate_target``."""
    if not isinstance(data, dict):
        raise ValueError("a target is a mapping")
    owner = data.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise ValueError("a target's owner is a string")
    if "telegram" in data:
        chat_id = _chat_id(data["telegram"])
        prefs = DeliveryPrefs.from_dict(data) if ("digest" in data or "quiet" in data) else None
        return TelegramTarget(chat_id, prefs or DeliveryPrefs(), owner)
    if "webhook" in data:
        hook = data["webhook"]
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
            raise ValueError("webhook target needs a url")
        raw = hook.get("secrets", hook.get("secret"))
        secrets = (raw,) if isinstance(raw, str) else tuple(raw or ())
        return WebhookTarget(hook["url"], secrets, owner)
    raise ValueError("a target is either telegram: CHAT_ID or webhook: {url, secret}")


_TELEGRAM_KEYS = frozenset({"telegram", "digest", "quiet"})
_WEBHOOK_KEYS = frozenset({"url", "secret", "secrets"})


def validate_target(data: object, policy: TargetPolicy = STRICT) -> dict[str, Any]:
    """A target being created or imported, checked and in its plain stored form
    (``{"telegram": id}`` or ``{"webhook": {"url", "secret"}}``). ValueError (a TargetError for
    the URL and secrets) names the problem, never the URL or a secret. A chat's delivery
    preferences belong to the chat (``/digest``, ``/quiet``), so they are dropped here."""
    if not isinstance(data, dict):
        raise ValueError("a target is a mapping")
    if "telegram" in data:
        unknown = set(data) - _TELEGRAM_KEYS
        if unknown:
            name = str(sorted(unknown, key=str)[0])[:40]
            raise ValueError(f"unknown key in a telegram target: {name!r}")
        return {"telegram": _chat_id(data["telegram"])}
    if "webhook" in data:
        if set(data) != {"webhook"}:
            raise ValueError("a webhook target holds only webhook: {url, secret}")
        hook = data["webhook"]
        if not isinstance(hook, dict):
            raise ValueError("webhook target needs a url and a secret")
        unknown = set(hook) - _WEBHOOK_KEYS
        if unknown or ("secret" in hook and "secrets" in hook):
            raise ValueError("a webhook holds only url and secret")
        url = hook.get("url")
        check_webhook_url(url, policy)
        secrets = check_secrets(hook.get("secret", hook.get("secrets")))
        secret: str | list[str] = secrets[0] if len(secrets) == 1 else list(secrets)
        return {"webhook": {"url": url, "secret": secret}}
    raise ValueError("a target is either telegram: CHAT_ID or webhook: {url, secret}")


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One delivery: an alert to one target, at its ``attempt`` (0 for the first).

    ``held`` marks a job already planned against digest/quiet hours (a flush, a redelivery), so
    it is sent now; ``force`` re-sends an alert already delivered (operator redelivery).
    """

    alert: Alert
    target: DeliveryTarget
    attempt: int = 0
    subscription_name: str | None = None
    held: bool = False
    force: bool = False

    @property
    def key(self) -> str:
        """The identity of this delivery across attempts: alert id + target."""
        return f"{self.alert.id}:{self.target.key}"

    @property
    def description(self) -> str:
        return f"deliver {self.alert.id} to {self.target.label} (attempt {self.attempt})"

    def next_attempt(self) -> DeliveryJob:
        return DeliveryJob(self.alert, self.target, self.attempt + 1, self.subscription_name,
                           self.held, self.force)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "alert": self.alert.to_dict(),
            "target": self.target.to_dict(),
            "attempt": self.attempt,
        }
        if self.subscription_name is not None:
            data["subscription_name"] = self.subscription_name
        if self.held:
            data["held"] = True
        if self.force:
            data["force"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryJob:
        """Decode a job payload; ValueError/KeyError/TypeError on bad data."""
        attempt = int(data.get("attempt", 0))
        if not 0 <= attempt <= constants.DELIVERY_ATTEMPTS_MAX:
            raise ValueError("attempt out of range")
        name = data.get("subscription_name")
        return cls(
            alert=Alert.from_dict(data["alert"]),
            target=parse_target(data["target"]),
            attempt=attempt,
            subscription_name=None if name is None else str(name),
            held=bool(data.get("held", False)),
            force=bool(data.get("force", False)),
        )


class DeliveryStatus(StrEnum):
    """What became of one delivery attempt."""

    SENT = "sent"  # delivered now
    ALREADY_SENT = "already_sent"  # an earlier delivery of this alert to this target succeeded
    IN_FLIGHT = "in_flight"  # another copy is sending it right now: check again later
    DEFERRED = "deferred"  # not a failure (rate limits): try again after ``retry_in``
    RETRY = "retry"  # failed for now: retry per the schedule (not before ``retry_in``)
    DEAD = "dead"  # failed for good (refused address, bad request): dead-letter it
    DISABLED = "disabled"  # the target is deactivated (blocked, kicked, gone): stop
    HELD = "held"  # held for a digest or until quiet hours end


# Outcomes after which nothing more is done for the delivery.
SETTLED = frozenset(
    {DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT, DeliveryStatus.DISABLED,
     DeliveryStatus.HELD}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    status: DeliveryStatus
    detail: str = ""
    retry_in: float = 0.0
    message_id: int | None = None

    @property
    def done(self) -> bool:
        """Nothing more to do for this delivery."""
        return self.status in SETTLED
