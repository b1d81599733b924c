"""POST signed alert payloads to webhook endpoints, with a delivery log per (owner, endpoint).

One attempt per call: check the URL as at subscription time (``service.core.targets``), sign the
JSON body the Standard Webhooks way (``webhook-id`` is the alert id, so every retry and
redelivery carries the same one), POST it through the pinned client (``workers.delivery.
pinning``: the host is resolved once, every address checked, the connection made to a checked
one; a name that does not resolve is not sent to), with a timeout and without following
redirects, and record the attempt in the endpoint's capped log. A 2xx is success; 410 Gone
disables the endpoint; anything else goes back to the retry schedule; a refused target goes to
the dead letters. The log is the tenant's to read, so a refused attempt is recorded without a
status, a latency or the reason's detail: it cannot be used to probe a network. Secrets never
reach a log line, an error text or the delivery log. A secret stored encrypted
(``service.core.secretbox``) is decrypted here, just before signing, and nowhere else; one that
cannot be decrypted (a missing or wrong TGWATCH_SECRETS_KEY) dead-letters the delivery with a
reason naming the subscription.
"""

from __future__ import annotations

import json
import time

import httpx
import structlog

from service import constants
from service.core.delivery import DeliveryJob, DeliveryStatus, Outcome, WebhookTarget, redact_url
from service.core.render import webhook_payload
from service.core.retry import parse_retry_after
from service.core.secretbox import SecretBox, SecretUnavailableError, installed
from service.core.signing import signature_header
from service.core.targets import STRICT, TargetError, TargetPolicy, check_webhook_url
from service.store.deliveries import Ledger
from service.store.subscription import public_id
from workers.delivery.once import send_once
from workers.delivery.pinning import (
    Resolver,
    TargetRefusedError,
    UnresolvableError,
    pinned_client,
    system_resolver,
)

log = structlog.get_logger(__name__)

USER_AGENT = "tgwatch-webhooks/1"
# What the tenant's delivery log says of a refused target, whatever the reason.
REFUSED = "refused: target not allowed"
UNRESOLVED = "cannot resolve the host"
# What the tenant's delivery log says of a secret that cannot be opened (the operator's key).
UNSIGNED = "not sent: the secret cannot be decrypted"


class WebhookSender:
    def __init__(
        self,
        ledger: Ledger,
        *,
        timeout: float,
        claim_ttl: float,
        policy: TargetPolicy = STRICT,
        log_max: int = constants.WEBHOOK_LOG_MAX,
        resolver: Resolver = system_resolver,
        box: SecretBox | None = None,
    ) -> None:
        self.ledger = ledger
        self.box = box if box is not None else installed()
        self.timeout = timeout
        self.claim_ttl = claim_ttl
        self.policy = policy
        self.log_max = log_max
        self.client = pinned_client(policy, timeout=timeout, resolver=resolver)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, job: DeliveryJob) -> Outcome:
        target = job.target
        if not isinstance(target, WebhookTarget):
            raise TypeError("WebhookSender sends to webhook targets only")
        return await send_once(
            self.ledger, target.key, job.key, lambda: self._attempt(job, target),
            claim_ttl=self.claim_ttl, force=job.force,
        )  # fmt: skip

    def _refused(self, target: WebhookTarget, job: DeliveryJob, at: float, reason: str) -> Outcome:
        self._record(target, job, at, status=None, latency_ms=None, error=REFUSED)
        log.warning("webhook_target_refused", url=redact_url(target.url), reason=reason)
        return Outcome(DeliveryStatus.DEAD, f"refused: {reason}")

    def _unopened(
        self, target: WebhookTarget, job: DeliveryJob, at: float, exc: SecretUnavailableError
    ) -> Outcome:
        """A secret no key opens: nothing can be signed, and no retry will change that until the
        operator fixes the key, so the delivery goes to the dead letters (redelivered then)."""
        self._record(target, job, at, status=None, latency_ms=None, error=UNSIGNED)
        log.error("webhook_secret_unavailable", subscription=job.alert.subscription_id,
                  endpoint=target.endpoint_id, reason=str(exc))  # fmt: skip
        return Outcome(DeliveryStatus.DEAD, f"subscription {job.alert.subscription_id}: {exc}")

    async def _attempt(self, job: DeliveryJob, target: WebhookTarget) -> Outcome:
        started = time.time()
        try:
            check_webhook_url(target.url, self.policy)
        except TargetError as exc:
            return self._refused(target, job, started, str(exc))
        try:  # the one place a stored secret is opened: right before it signs
            secrets = tuple(self.box.open(secret) for secret in target.secrets)
        except SecretUnavailableError as exc:
            return self._unopened(target, job, started, exc)
        payload = webhook_payload(job.alert, subscription_name=job.subscription_name)
        # A tenant knows its subscription by its own id, not the stored (scoped) one.
        payload["subscription"]["id"] = public_id(job.alert.subscription_id, target.owner)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "webhook-id": job.alert.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, job.alert.id, timestamp, body),
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
        except TargetRefusedError as exc:
            return self._refused(target, job, started, exc.reason)
        except UnresolvableError as exc:
            self._record(target, job, started, status=None, latency_ms=None, error=UNRESOLVED)
            log.warning("webhook_unresolvable", url=redact_url(target.url), detail=str(exc))
            return Outcome(DeliveryStatus.RETRY, UNRESOLVED)
        except httpx.TimeoutException:
            error = "timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = self._safe_error(exc, target, secrets)
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

    def _record(
        self, target: WebhookTarget, job: DeliveryJob, at: float, *, status: int | None,
        latency_ms: int | None, error: str | None,
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
    def _safe_error(exc: Exception, target: WebhookTarget, secrets: tuple[str, ...]) -> str:
        """An error text that names no secret and no full URL (its query may hold a token)."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in (*secrets, *target.secrets):
            text = text.replace(secret, "***")
        text = text.replace(target.url, redact_url(target.url))
        return text[:300]
