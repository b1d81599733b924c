"""What delivery jobs need, built once per worker process: stores, senders and their clients.

Part of the worker's one context (``workers.context.WorkerContext.delivery``). The Telegram
sender (and with it aiogram) exists only when a bot token is configured: a worker that never
talks to Telegram never imports aiogram.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from redis import Redis
from rq import Queue

from service.config import DeliverySettings, Settings
from service.core.delivery import DeliveryJob, TelegramTarget
from service.core.retry import RetryPolicy
from service.core.secretbox import SecretBox
from service.delivery_queue import DELIVER, deliveries_queue, enqueue, enqueue_job, job_payload
from service.metrics import Metrics
from service.store.deliveries import Ledger
from service.store.digests import DigestStore
from workers.delivery.ratelimit import TelegramLimits, TelegramRateLimiter
from workers.delivery.webhook import WebhookSender

if TYPE_CHECKING:
    from aiogram import Bot

    from workers.delivery.telegram import TelegramSender

T = TypeVar("T")
# Tests replace the queue with a function that records (or runs) what would be enqueued.
Scheduler = Callable[[str, dict[str, Any], str, float], None]

# Spread of Telegram retries: its schedule is short, so a fifth of a delay is enough to keep
# retries of a burst from arriving together.
TELEGRAM_RETRY_JITTER = 0.2


@dataclass
class DeliveryContext:
    redis: Redis
    queue: Queue
    settings: DeliverySettings
    metrics: Metrics
    ledger: Ledger
    limiter: TelegramRateLimiter
    digests: DigestStore
    webhooks: WebhookSender
    http: httpx.AsyncClient
    telegram: TelegramSender | None = None
    schedule: Scheduler | None = None
    box: SecretBox | None = None  # seals and opens webhook secrets (None: the process's)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        connection: Redis,
        settings: DeliverySettings,
        metrics: Metrics,
        *,
        bot: Bot | None = None,
        queue: Queue | None = None,
        schedule: Scheduler | None = None,
        lease: str | None = None,
        box: SecretBox | None = None,
    ) -> DeliveryContext:
        """Wire the stores and senders around the given clients (tests pass their own);
        ``lease`` is the worker process's (its claims are taken over if it dies); ``box`` opens
        webhook secrets to sign and seals what is written back (default: the process's)."""
        ledger = Ledger(connection, owner=lease, box=box)
        limiter = TelegramRateLimiter(
            connection,
            TelegramLimits(
                global_per_second=settings.global_per_second,
                per_chat_interval=settings.per_chat_interval,
                group_per_minute=settings.group_per_minute,
                group_window=settings.group_window,
                margin=settings.limit_margin,
            ),
        )
        webhooks = WebhookSender(
            ledger,
            timeout=settings.webhook_timeout,
            claim_ttl=settings.lease_seconds,
            policy=settings.target_policy(),
            log_max=settings.webhook_log_max,
            box=box,
        )
        telegram = None
        if bot is not None:
            from workers.delivery.telegram import TelegramSender

            telegram = TelegramSender(
                bot,
                ledger,
                limiter,
                metrics,
                claim_ttl=settings.lease_seconds,
                max_inline_wait=settings.max_inline_wait,
            )
        return cls(
            redis=connection,
            queue=queue or deliveries_queue(connection),
            settings=settings,
            metrics=metrics,
            ledger=ledger,
            limiter=limiter,
            digests=DigestStore(connection, settings.lease_seconds),
            webhooks=webhooks,
            http=webhooks.client,
            telegram=telegram,
            schedule=schedule,
            box=box,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, connection: Redis, metrics: Metrics, lease: str | None = None
    ) -> DeliveryContext:
        """The context of a worker process: a Bot when a token is configured, an HTTP client."""
        bot = None
        if settings.telegram_token is not None:
            from service.telegram import make_bot

            bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url,
                           timeout=settings.delivery.telegram_timeout)  # fmt: skip
        return cls.build(connection, settings.delivery, metrics, bot=bot, lease=lease,
                         box=settings.secret_box())  # fmt: skip

    def policy(self, target: object) -> RetryPolicy:
        """The retry policy of a target kind (Telegram's short one, or the webhooks' hours)."""
        if isinstance(target, TelegramTarget):
            return RetryPolicy(self.settings.telegram_schedule, TELEGRAM_RETRY_JITTER)
        return RetryPolicy(self.settings.webhook_schedule, self.settings.webhook_jitter)

    def enqueue(self, job: DeliveryJob, delay: float = 0.0) -> None:
        """Put a delivery (a retry, a re-check) back on the queue, now or after ``delay``."""
        if self.schedule is not None:
            self.schedule(DELIVER, job_payload(job, self.box), job.description, delay)
        else:
            enqueue_job(self.queue, job, delay, box=self.box)

    def enqueue_call(
        self, function: str, payload: dict[str, Any], description: str, delay: float = 0.0
    ) -> None:
        """Put another delivery-side job (a digest flush, a recovered job) on the queue."""
        if self.schedule is not None:
            self.schedule(function, payload, description, delay)
        else:
            enqueue(self.queue, function, payload, description, delay)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the context's own loop (jobs are synchronous functions)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.telegram is not None:
            await self.telegram.bot.session.close()

    def close(self) -> None:
        """Close the clients on the loop ``run`` made (none was made: they never connected)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self.aclose())
            self._loop.close()
