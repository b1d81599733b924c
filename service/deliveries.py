"""Hand alerts to the delivery workers: one RQ job per (alert, target) on the deliveries queue.

A target is the rules file's ``notify:`` item: ``{"telegram": -1001234}`` or
``{"webhook": {"url": ..., "secret": "whsec_..."}}`` (``secret`` may be a list during a
rotation). A Telegram target may carry the subscriber's delivery preferences
(``"digest": "1h"``, ``"quiet": {"start": "23:00", "end": "07:00", "tz": "Europe/Moscow"}``).
Job payloads are plain JSON (``DeliveryJob.to_dict``) and never carry framework objects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from rq import Queue
from rq.job import Job

from service import constants
from service.core.model import Alert
from service.core.schedule import DeliveryPrefs

log = structlog.get_logger(__name__)

JOB_FUNCTION = "workers.delivery.jobs.deliver"


def redact_url(url: str) -> str:
    """A URL safe to log: scheme, host, port and path; no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True, slots=True)
class TelegramTarget:
    chat_id: int
    prefs: DeliveryPrefs = field(default_factory=DeliveryPrefs)

    @property
    def key(self) -> str:
        return f"tg:{self.chat_id}"

    @property
    def label(self) -> str:
        return f"telegram {self.chat_id}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"telegram": self.chat_id}
        if self.prefs.holds:
            data.update(self.prefs.to_dict())
        return data


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an absolute http(s) URL")
        if not self.secrets or not all(isinstance(s, str) and s for s in self.secrets):
            raise ValueError("webhook needs a secret")

    @property
    def endpoint_id(self) -> str:
        """A stable id of the endpoint (its URL), used in Redis keys and logs."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        return f"wh:{self.endpoint_id}"

    @property
    def label(self) -> str:
        return f"webhook {redact_url(self.url)}"

    def __repr__(self) -> str:  # never show the secrets
        return f"WebhookTarget(url={redact_url(self.url)!r}, secrets=<{len(self.secrets)}>)"

    def to_dict(self) -> dict[str, Any]:
        secret: str | list[str] = self.secrets[0] if len(self.secrets) == 1 else list(self.secrets)
        return {"webhook": {"url": self.url, "secret": secret}}


DeliveryTarget = TelegramTarget | WebhookTarget


def parse_target(data: dict[str, Any]) -> DeliveryTarget:
    """A target from its ``notify:`` form; ValueError (without the secret) when malformed."""
    if not isinstance(data, dict):
        raise ValueError("a target is a mapping")
    if "telegram" in data:
        chat = data["telegram"]
        if isinstance(chat, bool) or not isinstance(chat, int | str):
            raise ValueError("telegram target must be a chat id")
        try:
            chat_id = int(chat)
        except ValueError:
            raise ValueError("telegram target must be a numeric chat id") from None
        prefs = DeliveryPrefs.from_dict(data) if ("digest" in data or "quiet" in data) else None
        return TelegramTarget(chat_id, prefs or DeliveryPrefs())
    if "webhook" in data:
        hook = data["webhook"]
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
            raise ValueError("webhook target needs a url")
        raw = hook.get("secrets", hook.get("secret"))
        secrets = (raw,) if isinstance(raw, str) else tuple(raw or ())
        return WebhookTarget(hook["url"], secrets)
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
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        name = data.get("subscription_name")
        return cls(
            alert=Alert.from_dict(data["alert"]),
            target=parse_target(data["target"]),
            attempt=attempt,
            subscription_name=None if name is None else str(name),
            held=bool(data.get("held", False)),
            force=bool(data.get("force", False)),
        )


def enqueue_job(queue: Queue, job: DeliveryJob, delay: float = 0.0) -> Job:
    """Put one delivery on ``queue``, now or after ``delay`` seconds (RQ's scheduler)."""
    options: dict[str, Any] = {
        "job_timeout": constants.DELIVERY_JOB_TIMEOUT_SECONDS,
        "result_ttl": constants.JOB_RESULT_TTL_SECONDS,
        "failure_ttl": constants.JOB_FAILURE_TTL_SECONDS,
        # RQ's default description quotes the arguments, which hold webhook secrets.
        "description": job.description,
    }
    if delay > 0:
        return queue.enqueue_in(timedelta(seconds=delay), JOB_FUNCTION, job.to_dict(), **options)
    return queue.enqueue(JOB_FUNCTION, job.to_dict(), **options)


def enqueue_deliveries(
    queue: Queue,
    alert: Alert,
    targets: list[dict[str, Any]],
    *,
    subscription_name: str | None = None,
) -> int:
    """Enqueue one delivery job per target of ``alert``; returns how many were enqueued.

    ``queue`` is the deliveries queue (``constants.DELIVERIES_QUEUE``). A suppressed alert
    (edit of an alerted post, duplicate text) is not delivered. A malformed target is logged and
    skipped so the other targets still get the alert.
    """
    if alert.suppressed is not None:
        return 0
    count = 0
    for raw in targets:
        try:
            target = parse_target(raw)
        except ValueError as exc:
            log.warning("delivery_target_invalid", alert_id=alert.id, reason=str(exc))
            continue
        enqueue_job(queue, DeliveryJob(alert, target, 0, subscription_name))
        count += 1
    return count
