"""Send alerts to Telegram chats through one aiogram Bot, within the shared rate limits.

Per send: skip a disabled target; claim the delivery in the ledger (a sent alert is never sent
again, a claimed one is being sent elsewhere); wait for a rate-limit slot; sendMessage. A 429
pauses every worker for ``retry_after`` and the send is tried again; 403 deactivates the target;
400 "chat not found" is recorded and not retried; network errors and 5xx go back to the retry
schedule. The bot token never reaches a log line or an error text.
"""

from __future__ import annotations

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions

from service.core.render import TelegramMessage, render_telegram
from service.deliveries import DeliveryJob, TelegramTarget
from service.metrics import Metrics
from workers.delivery import outcome as oc
from workers.delivery.ledger import Ledger
from workers.delivery.outcome import Outcome
from workers.delivery.ratelimit import TelegramRateLimiter

log = structlog.get_logger(__name__)

# 429s answered in a row before the send goes back to the queue instead of waiting again.
MAX_RATE_LIMITED_IN_A_ROW = 3


class TelegramSender:
    def __init__(
        self,
        bot: Bot | None,
        ledger: Ledger,
        limiter: TelegramRateLimiter,
        *,
        claim_ttl: float,
        max_inline_wait: float,
    ) -> None:
        self.bot = bot
        self.ledger = ledger
        self.limiter = limiter
        self.claim_ttl = claim_ttl
        self.max_inline_wait = max_inline_wait
        # Set by the worker's composition root; None in tests that do not count.
        self.metrics: Metrics | None = None

    async def send(self, job: DeliveryJob) -> Outcome:
        """Deliver ``job`` (whose target is a TelegramTarget) as one alert message."""
        target = job.target
        if not isinstance(target, TelegramTarget):
            raise TypeError("TelegramSender sends to telegram targets only")
        message = render_telegram(job.alert, subscription_name=job.subscription_name)
        return await self.send_message(job.key, target, message, force=job.force)

    async def send_message(
        self, delivery_key: str, target: TelegramTarget, message: TelegramMessage,
        *, force: bool = False,
    ) -> Outcome:  # fmt: skip
        """Send ``message`` once per ``delivery_key`` (alerts and digests alike)."""
        if self.ledger.disabled(target.key) is not None:
            return Outcome(oc.DISABLED, "target disabled")
        claim = self.ledger.claim(delivery_key, self.claim_ttl, force=force)
        if claim.state == "sent":
            return Outcome(oc.ALREADY_SENT, message_id=claim.message_id)
        if claim.state == "busy":
            return Outcome(oc.IN_FLIGHT, "claimed by another worker", retry_in=claim.ttl)
        outcome = Outcome(oc.RETRY, "send did not finish")
        try:
            outcome = await self._send_claimed(target, message)
        finally:
            if outcome.status == oc.SENT:
                self.ledger.mark_sent(delivery_key, outcome.message_id)
            else:
                self.ledger.release(delivery_key)
        return outcome

    async def _send_claimed(self, target: TelegramTarget, message: TelegramMessage) -> Outcome:
        if self.bot is None:
            return Outcome(oc.RETRY, "no bot token configured")
        markup = None
        if message.reply_markup is not None:
            markup = InlineKeyboardMarkup.model_validate(message.reply_markup)
        chat_id = target.chat_id
        rate_limited = 0
        while True:
            wait = await self.limiter.wait_turn(chat_id, self.max_inline_wait)
            if wait > 0:
                return Outcome(oc.DEFERRED, "rate limited", retry_in=wait)
            try:
                sent = await self.bot.send_message(
                    chat_id,
                    message.text,
                    parse_mode="HTML",
                    reply_markup=markup,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            except TelegramRetryAfter as exc:
                rate_limited += 1
                self.limiter.pause(exc.retry_after)
                if self.metrics is not None:
                    self.metrics.telegram_rate_limited(exc.retry_after)
                log.warning("telegram_rate_limited", chat_id=chat_id, retry_after=exc.retry_after)
                give_back = exc.retry_after > self.max_inline_wait
                if give_back or rate_limited >= MAX_RATE_LIMITED_IN_A_ROW:
                    return Outcome(oc.DEFERRED, "429 too many requests", retry_in=exc.retry_after)
                continue
            except TelegramMigrateToChat as exc:
                # The group became a supergroup: send there once, and tell the operator.
                self.ledger.record_problem(target.key, "migrated", str(exc.migrate_to_chat_id))
                log.warning("telegram_chat_migrated", chat_id=chat_id,
                            new_chat_id=exc.migrate_to_chat_id)  # fmt: skip
                chat_id = exc.migrate_to_chat_id
                continue
            except TelegramForbiddenError as exc:
                detail = self._safe(exc)
                self.ledger.disable_target(target.key, "forbidden", detail)
                log.warning("telegram_target_disabled", chat_id=chat_id, detail=detail)
                return Outcome(oc.DISABLED, detail)
            except (TelegramBadRequest, TelegramNotFound) as exc:
                detail = self._safe(exc)
                reason = "chat_not_found" if "chat not found" in detail.lower() else "bad_request"
                self.ledger.record_problem(target.key, reason, detail)
                log.warning("telegram_send_refused", chat_id=chat_id, reason=reason,
                            detail=detail)  # fmt: skip
                return Outcome(oc.DEAD, f"{reason}: {detail}")
            except TelegramAPIError as exc:  # network, 5xx, 401, 409...: try again later
                detail = self._safe(exc)
                log.warning("telegram_send_failed", chat_id=chat_id, error=type(exc).__name__,
                            detail=detail)  # fmt: skip
                return Outcome(oc.RETRY, detail)
            log.info("telegram_sent", chat_id=chat_id, message_id=sent.message_id)
            return Outcome(oc.SENT, message_id=sent.message_id)

    def _safe(self, exc: BaseException) -> str:
        """An error text without the bot token (aiogram errors may quote request URLs)."""
        text = f"{type(exc).__name__}: {exc}"
        if self.bot is not None and self.bot.token:
            text = text.replace(self.bot.token, "***")
        return text[:500]
