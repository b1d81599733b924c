"""The per-process delivery context: clients and stores built once at worker start-up.

RQ calls job functions by name with only their payload, so the worker's composition root
builds one ``DeliveryContext`` (``from_settings``) and installs it with ``set_context``; jobs
read it with ``get_context``. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from aiogram import Bot
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from service import constants
from service.config import Settings
from service.deliveries import DeliveryJob, enqueue_job
from service.metrics import Metrics
from service.telegram import make_bot
from workers.delivery.digest import DigestStore
from workers.delivery.journal import Journal
from workers.delivery.ledger import Ledger
from workers.delivery.ratelimit import TelegramLimits, TelegramRateLimiter
from workers.delivery.settings import DeliverySettings
from workers.delivery.telegram import TelegramSender
from workers.delivery.webhook import WebhookSender

T = TypeVar("T")
Scheduler = Callable[[DeliveryJob, float], None]

_current: DeliveryContext | None = None


def deliveries_queue(connection: Redis) -> Queue:
    """The deliveries queue, with the JSON serializer every tgwatch queue uses."""
    return Queue(constants.DELIVERIES_QUEUE, connection=connection, serializer=JSONSerializer)


@dataclass
class DeliveryContext:
    redis: Redis
    queue: Queue
    settings: DeliverySettings
    ledger: Ledger
    journal: Journal
    limiter: TelegramRateLimiter
    digests: DigestStore
    telegram: TelegramSender
    webhooks: WebhookSender
    http: httpx.AsyncClient
    bot: Bot | None = None
    schedule: Scheduler | None = None
    metrics: Metrics | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        connection: Redis,
        *,
        settings: DeliverySettings | None = None,
        bot: Bot | None = None,
        http: httpx.AsyncClient | None = None,
        queue: Queue | None = None,
        schedule: Scheduler | None = None,
    ) -> DeliveryContext:
        """Wire the stores and senders around the given clients (tests pass their own)."""
        config = settings or DeliverySettings()
        ledger = Ledger(connection)
        limiter = TelegramRateLimiter(
            connection,
            TelegramLimits(
                global_per_second=config.global_per_second,
                per_chat_interval=config.per_chat_interval,
                group_per_minute=config.group_per_minute,
                group_window=config.group_window,
                margin=config.limit_margin,
            ),
        )
        client = http or httpx.AsyncClient(
            timeout=config.webhook_timeout, follow_redirects=False, trust_env=False
        )
        return cls(
            redis=connection,
            queue=queue or deliveries_queue(connection),
            settings=config,
            ledger=ledger,
            journal=Journal(connection, config.lease_seconds),
            limiter=limiter,
            digests=DigestStore(connection, config.lease_seconds),
            telegram=TelegramSender(
                bot,
                ledger,
                limiter,
                claim_ttl=config.lease_seconds,
                max_inline_wait=config.max_inline_wait,
            ),
            webhooks=WebhookSender(
                client,
                ledger,
                timeout=config.webhook_timeout,
                claim_ttl=config.lease_seconds,
                allow_private=config.allow_private_targets,
                allow_loopback=config.allow_loopback_targets,
                log_max=config.webhook_log_max,
            ),
            http=client,
            bot=bot,
            schedule=schedule,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, connection: Redis,
        delivery: DeliverySettings | None = None,
    ) -> DeliveryContext:  # fmt: skip
        """The context of a worker process: a Bot when a token is configured, an HTTP client."""
        config = delivery or DeliverySettings()
        bot = None
        if settings.telegram_token is not None:
            bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url,
                           timeout=config.telegram_timeout)  # fmt: skip
        return cls.build(connection, settings=config, bot=bot)

    def enqueue(self, job: DeliveryJob, delay: float = 0.0) -> None:
        """Put a delivery (a retry, a redelivery) back on the queue, now or after ``delay``."""
        if self.schedule is not None:
            self.schedule(job, delay)
        else:
            enqueue_job(self.queue, job, delay)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the context's own loop (jobs are synchronous functions)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.bot is not None:
            await self.bot.session.close()

    def close(self) -> None:
        """Close the clients (and the loop ``run`` made, if any)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self.aclose())
            self._loop.close()


def set_context(context: DeliveryContext | None) -> None:
    global _current  # noqa: PLW0603 - the one slot RQ leaves us to pass a context to jobs
    _current = context


def get_context() -> DeliveryContext:
    if _current is None:
        raise RuntimeError("no delivery context installed: call set_context() at worker start")
    return _current
