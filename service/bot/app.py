"""The bot's composition: routers joined in one place, access control, workflow data, polling.

Handlers get ``store`` (SubscriberStore, holding owners to their limits), ``redis`` (a sync
client, used through threads), ``access`` (BotAccess), ``static_channels`` (the settings'
channels), ``limits`` (TGWATCH_LIMIT_*), ``test_budget`` (query tests per chat and minute) and
``tests`` (the pool query tests run on) by parameter name from the dispatcher's workflow
data. ``setup_dispatcher`` also serves a process that already runs a Dispatcher for the same
token (the bot listener), since Telegram allows one getUpdates consumer per token: include the
routers there and add ``ALLOWED_UPDATES`` to its allowed updates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.types import TelegramObject, User

from service import constants
from service.bot.access import BotAccess
from service.bot.routers import callbacks, channels, links, settings, start, watch
from service.config import LimitSettings
from service.store.quotas import RequestBudget
from service.store.subscribers import OwnerLimits, SubscriberStore

log = structlog.get_logger(__name__)

# The update types the subscriber bot handles: commands and the alerts' buttons.
ALLOWED_UPDATES = ("message", "callback_query")
# Every router of the bot, in the order updates try them.
ROUTER_MODULES = (start, links, watch, settings, channels, callbacks)


class AccessMiddleware(BaseMiddleware):
    """Drops every update from a user or chat outside the allow-list, before any handler."""

    def __init__(self, access: BotAccess) -> None:
        self.access = access

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        user_id = user.id if user is not None else None
        chat_id = chat.id if chat is not None else None
        if not self.access.allows(user_id, chat_id):
            log.info("bot_update_refused", user_id=user_id, chat_id=chat_id)
            return None
        return await handler(event, data)


def setup_dispatcher(
    dispatcher: Dispatcher,
    *,
    client: redis.Redis,
    access: BotAccess,
    static_channels: list[str] | None = None,
    limits: LimitSettings | None = None,
) -> Dispatcher:
    """Join the subscriber routers into ``dispatcher`` and give it their workflow data.
    ``limits`` are the settings' (read from the environment when not given)."""
    limits = limits or LimitSettings()
    middleware = AccessMiddleware(access)
    dispatcher.message.outer_middleware(middleware)
    dispatcher.callback_query.outer_middleware(middleware)
    dispatcher.include_routers(*(module.build_router() for module in ROUTER_MODULES))
    dispatcher["store"] = SubscriberStore(client, OwnerLimits(limits.subscriptions, limits.regexes))
    dispatcher["redis"] = client
    dispatcher["access"] = access
    dispatcher["static_channels"] = list(static_channels or ())
    dispatcher["limits"] = limits
    dispatcher["test_budget"] = RequestBudget(client, "bot-test", limits.test_per_minute)
    dispatcher["tests"] = ThreadPoolExecutor(constants.TEST_THREADS, thread_name_prefix="bot-test")
    return dispatcher


def build_dispatcher(
    client: redis.Redis,
    access: BotAccess,
    static_channels: list[str] | None = None,
    limits: LimitSettings | None = None,
) -> Dispatcher:
    return setup_dispatcher(
        Dispatcher(), client=client, access=access, static_channels=static_channels,
        limits=limits,
    )  # fmt: skip


class BotRefusedError(RuntimeError):
    """The Bot API refused the bot (a bad token) or cannot be reached at start."""


async def run_bot(
    bot: Bot,
    dispatcher: Dispatcher,
    stop: asyncio.Event,
    *,
    polling_timeout: int = constants.BOT_POLL_TIMEOUT_SECONDS,
) -> None:
    """Long-poll until ``stop`` is set. Raises BotRefusedError when the Bot API refuses the
    token or cannot be reached at start (one clear line instead of a traceback)."""
    from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

    try:
        await bot.get_me()
    except TelegramUnauthorizedError:
        raise BotRefusedError("the Bot API refused the token (401 Unauthorized)") from None
    except (TimeoutError, TelegramAPIError, OSError) as exc:
        raise BotRefusedError(f"the Bot API cannot be reached: {type(exc).__name__}") from None
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=True,
            polling_timeout=polling_timeout,
            allowed_updates=list(ALLOWED_UPDATES),
        )
    )
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not polling.done():
            with contextlib.suppress(RuntimeError):  # polling not started yet
                await dispatcher.stop_polling()
            await polling
