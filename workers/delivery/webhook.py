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
from urllib.parse import urlsplit

import httpx
import structlog

from service import constants
from service.core.delivery import DeliveryJob, DeliveryStatus, Outcome, WebhookTarget, redact_url
from service.core.render import webhook_payload
from service.core.retry import parse_retry_after
from service.core.signing import signature_header
from service.store.deliveries import Ledger
from workers.delivery.once import send_once

log = structlog.get_logger(__name__)

USER_AGENT = "tgwatch-webhooks/1"


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
        return await send_once(
            self.ledger, target.key, job.key, lambda: self._attempt(job, target),
            claim_ttl=self.claim_ttl, force=job.force,
        )  # fmt: skip

    async def _attempt(self, job: DeliveryJob, target: WebhookTarget) -> Outcome:
        started = time.time()
        refusal = await self._check_target(target.url)
        if refusal is not None:
            self._record(
                target, job, started, status=None, latency_ms=0, error=f"refused: {refusal}"
            )
            log.warning("webhook_target_refused", url=redact_url(target.url), reason=refusal)
            return Outcome(DeliveryStatus.DEAD, f"refused: {refusal}")
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
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time()) or 0.0
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
            return Outcome(DeliveryStatus.SENT)
        log.warning("webhook_attempt_failed", error=error, **fields)
        if status == 410:
            self.ledger.disable_target(target.key, "gone", "endpoint answered 410 Gone")
            return Outcome(DeliveryStatus.DISABLED, "410 Gone")
        return Outcome(DeliveryStatus.RETRY, error, retry_in=retry_after)

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
        self.ledger.log_attempt(target, entry, self.log_max)

    @staticmethod
    def _safe_error(exc: Exception, target: WebhookTarget) -> str:
        """An error text that names no secret and no full URL (its query may hold a token)."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in target.secrets:
            text = text.replace(secret, "***")
        text = text.replace(target.url, redact_url(target.url))
        return text[:300]
