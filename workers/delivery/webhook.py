"""POST signed alert payloads to webhook endpoints, with a delivery log per endpoint.

One attempt per call: refuse targets that resolve to private, loopback or link-local addresses
(unless allowed), sign the JSON body the Standard Webhooks way (``webhook-id`` is the alert id,
so every retry and redelivery carries the same one), POST it with a timeout and without
following redirects, record the attempt (time, status, latency, error) in the endpoint's capped
log. A 2xx is success; 410 Gone disables the endpoint; anything else goes back to the retry
schedule. Secrets never reach a log line, an error text or the delivery log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
import structlog

from service import constants
from service.core.render import webhook_payload
from service.core.signing import signature_header
from service.deliveries import DeliveryJob, WebhookTarget, redact_url
from workers.delivery import outcome as oc
from workers.delivery.ledger import Ledger
from workers.delivery.outcome import Outcome

log = structlog.get_logger(__name__)

LOG_PREFIX = constants.DELIVERY_KEY_PREFIX + "log:"
USER_AGENT = "tgwatch-webhooks/1"


def delivery_log_key(endpoint_id: str) -> str:
    return LOG_PREFIX + endpoint_id


def delivery_log(
    connection: redis.Redis, target: WebhookTarget, limit: int = 100
) -> list[dict[str, Any]]:
    """The endpoint's latest attempts, newest first."""
    raw = connection.lrange(delivery_log_key(target.endpoint_id), 0, limit - 1)
    return [json.loads(item) for item in raw]


def address_refusal(address: str, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Why an IP address may not be a webhook target, or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "loopback address"
    if ip.is_unspecified or ip.is_multicast:
        return "unroutable address"
    if ip.is_link_local or ip.is_private or ip.is_reserved or not ip.is_global:
        return None if allow_private else "private or link-local address"
    return None


class WebhookSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        ledger: Ledger,
        *,
        timeout: float,
        claim_ttl: float,
        allow_private: bool = False,
        allow_loopback: bool = False,
        log_max: int = constants.WEBHOOK_LOG_MAX,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.timeout = timeout
        self.claim_ttl = claim_ttl
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.log_max = log_max

    async def send(self, job: DeliveryJob) -> Outcome:
        target = job.target
        if not isinstance(target, WebhookTarget):
            raise TypeError("WebhookSender sends to webhook targets only")
        if self.ledger.disabled(target.key) is not None:
            return Outcome(oc.DISABLED, "endpoint disabled")
        claim = self.ledger.claim(job.key, self.claim_ttl, force=job.force)
        if claim.state == "sent":
            return Outcome(oc.ALREADY_SENT)
        if claim.state == "busy":
            return Outcome(oc.IN_FLIGHT, "claimed by another worker", retry_in=claim.ttl)
        outcome = Outcome(oc.RETRY, "attempt did not finish")
        try:
            outcome = await self._attempt(job, target)
        finally:
            if outcome.status == oc.SENT:
                self.ledger.mark_sent(job.key)
            else:
                self.ledger.release(job.key)
        return outcome

    async def _attempt(self, job: DeliveryJob, target: WebhookTarget) -> Outcome:
        started = time.time()
        refusal = await self._check_target(target.url)
        if refusal is not None:
            self._record(
                target, job, started, status=None, latency_ms=0, error=f"refused: {refusal}"
            )
            log.warning("webhook_target_refused", url=redact_url(target.url), reason=refusal)
            return Outcome(oc.DEAD, f"refused: {refusal}")
        payload = webhook_payload(job.alert, subscription_name=job.subscription_name)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "webhook-id": job.alert.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(target.secrets, job.alert.id, timestamp, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        clock = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after = 0.0
        try:
            response = await self.client.post(
                target.url, content=body, headers=headers, timeout=self.timeout,
                follow_redirects=False,
            )  # fmt: skip
            status = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after"))
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = self._safe_error(exc, target)
        latency_ms = int((time.perf_counter() - clock) * 1000)
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        self._record(target, job, started, status=status, latency_ms=latency_ms, error=error)
        fields = {"alert_id": job.alert.id, "url": redact_url(target.url),
                  "attempt": job.attempt, "status": status, "latency_ms": latency_ms}  # fmt: skip
        if error is None:
            log.info("webhook_delivered", **fields)
            return Outcome(oc.SENT)
        log.warning("webhook_attempt_failed", error=error, **fields)
        if status == 410:
            self.ledger.disable_target(target.key, "gone", "endpoint answered 410 Gone")
            return Outcome(oc.DISABLED, "410 Gone")
        return Outcome(oc.RETRY, error, retry_in=retry_after)

    async def _check_target(self, url: str) -> str | None:
        """Why the URL's host may not be reached, or None. Checks every resolved address."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port)
            except OSError:
                return None  # unresolvable now: the attempt fails and is retried
            addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            refusal = address_refusal(address, allow_private=self.allow_private,
                                      allow_loopback=self.allow_loopback)  # fmt: skip
            if refusal is not None:
                return refusal
        return None

    def _record(
        self, target: WebhookTarget, job: DeliveryJob, at: float, *, status: int | None,
        latency_ms: int, error: str | None,
    ) -> None:  # fmt: skip
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "alert_id": job.alert.id,
            "attempt": job.attempt,
            "url": redact_url(target.url),
            "status": status,
            "latency_ms": latency_ms,
            "error": error,
        }
        key = delivery_log_key(target.endpoint_id)
        with self.ledger.redis.pipeline() as pipe:
            pipe.lpush(key, json.dumps(entry))
            pipe.ltrim(key, 0, self.log_max - 1)
            pipe.execute()

    @staticmethod
    def _safe_error(exc: Exception, target: WebhookTarget) -> str:
        """An error text that names no secret and no full URL (its query may hold a token)."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in target.secrets:
            text = text.replace(secret, "***")
        text = text.replace(target.url, redact_url(target.url))
        return text[:300]


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header given in seconds (dates are ignored)."""
    if value is None:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 0.0
