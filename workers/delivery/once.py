"""At most one send per delivery: skip a disabled target, claim, send, then mark sent or release.

Every sender (a Telegram alert, a webhook, a digest message) sends through ``send_once``: a sent
marker makes any later delivery of the same key a no-op, a live claim means another worker is
sending it now, and a claim left by a dead worker expires after the lease so recovery can send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service.core.delivery import DeliveryStatus, Outcome
from service.store.deliveries import Ledger


async def send_once(
    ledger: Ledger,
    target_key: str,
    delivery_key: str,
    send: Callable[[], Awaitable[Outcome]],
    *,
    claim_ttl: float,
    force: bool = False,
) -> Outcome:
    """Run ``send`` unless the target is disabled, the delivery was sent, or another worker
    holds its claim; record what became of it."""
    if ledger.disabled(target_key) is not None:
        return Outcome(DeliveryStatus.DISABLED, "target disabled")
    claim = ledger.claim(delivery_key, claim_ttl, force=force)
    if claim.state == "sent":
        return Outcome(DeliveryStatus.ALREADY_SENT, message_id=claim.message_id)
    if claim.state == "busy":
        return Outcome(DeliveryStatus.IN_FLIGHT, "claimed by another worker", retry_in=claim.ttl)
    outcome = Outcome(DeliveryStatus.RETRY, "send did not finish")
    try:
        outcome = await send()
    finally:
        if outcome.status == DeliveryStatus.SENT:
            ledger.mark_sent(delivery_key, outcome.message_id)
        else:
            ledger.release(delivery_key)
    return outcome
