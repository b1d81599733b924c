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

from service.core.delivery import DeliveryJob, DeliveryStatus, Outcome, TelegramTarget
from service.core.render import TelegramMessage, render_telegram
from service.core.retry import bounded_delay
from service.metrics import Metrics
from service.store.deliveries import Ledger
from workers.delivery.once import send_once
from workers.delivery.ratelimit import TelegramRateLimiter

log = structlog.get_logger(__name__)

# 429s answered in a row before the send goes back to the queue instead of waiting again.
MAX_RATE_LIMITED_IN_A_ROW = 3


class TelegramSender:
    def __init__(
        self,
        bot: Bot,
        ledger: Ledger,
        limiter: TelegramRateLimiter,
        metrics: Metrics,
        *,
        claim_ttl: float,
        max_inline_wait: float,
    ) -> None:
        self.bot = bot
        self.ledger = ledger
        self.limiter = limiter
        self.claim_ttl = claim_ttl
        self.max_inline_wait = max_inline_wait
        self.metrics = metrics

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
        return await send_once(
            self.ledger, target.key, delivery_key, lambda: self._send_claimed(target, message),
            claim_ttl=self.claim_ttl, force=force,
        )  # fmt: skip

    async def _send_claimed(self, target: TelegramTarget, message: TelegramMessage) -> Outcome:
        markup = None
        if message.reply_markup is not None:
            markup = InlineKeyboardMarkup.model_validate(message.reply_markup)
        chat_id = target.chat_id
        rate_limited = 0
        while True:
            wait = await self.limiter.wait_turn(chat_id, self.max_inline_wait)
            if wait > 0:
                return Outcome(DeliveryStatus.DEFERRED, "rate limited", retry_in=wait)
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
                retry_after = bounded_delay(float(exc.retry_after))
                self.limiter.pause(retry_after)
                self.metrics.telegram_rate_limited(retry_after)
                log.warning("telegram_rate_limited", chat_id=chat_id, retry_after=retry_after)
                give_back = retry_after > self.max_inline_wait
                if give_back or rate_limited >= MAX_RATE_LIMITED_IN_A_ROW:
                    return Outcome(
                        DeliveryStatus.DEFERRED, "429 too many requests", retry_in=retry_after
                    )
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
                return Outcome(DeliveryStatus.DISABLED, detail)
            except (TelegramBadRequest, TelegramNotFound) as exc:
                detail = self._safe(exc)
                reason = "chat_not_found" if "chat not found" in detail.lower() else "bad_request"
                self.ledger.record_problem(target.key, reason, detail)
                log.warning("telegram_send_refused", chat_id=chat_id, reason=reason,
                            detail=detail)  # fmt: skip
                return Outcome(DeliveryStatus.DEAD, f"{reason}: {detail}")
            except TelegramAPIError as exc:  # network, 5xx, 401, 409...: try again later
                detail = self._safe(exc)
                log.warning("telegram_send_failed", chat_id=chat_id, error=type(exc).__name__,
                            detail=detail)  # fmt: skip
                return Outcome(DeliveryStatus.RETRY, detail)
            log.info("telegram_sent", chat_id=chat_id, message_id=sent.message_id)
            return Outcome(DeliveryStatus.SENT, message_id=sent.message_id)

    def _safe(self, exc: BaseException) -> str:
        """An error text without the bot token (aiogram errors may quote request URLs)."""
        text = f"{type(exc).__name__}: {exc}"
        if self.bot.token:
            text = text.replace(self.bot.token, "***")
        return text[:500]
