"""/start and /help: register the chat as a subscriber and explain the commands."""

from __future__ import annotations

import asyncio

import redis
from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from service.bot.routers.common import say, subscriber_of
from service.bot.routers.links import link_with_code
from service.core.delivery import TelegramTarget
from service.store.deliveries import Ledger
from service.store.subscribers import SubscriberStore

HELP = """<b>tgwatch</b> tells you when a Telegram channel posts what you watch.

<b>Watches</b>
/watch <code>query</code> — watch a query, e.g. <code>/watch санкции AND (ЕС OR EU)</code>
/test <code>query</code> — try a query on recent posts before saving it
/list — your watches
/unwatch <code>id</code> — stop a watch
/pause [<code>id</code>|all], /resume [<code>id</code>|all] — pause or resume one or all

<b>Accounts</b>
/link <code>code</code> — receive the alerts of an API account that gave you the code
/links — linked accounts; /unlink <code>owner</code> — stop one

<b>Delivery</b>
/digest off|15m|1h|daily — collect alerts into one message per window
/quiet <code>23:00-07:00 Europe/Moscow</code> — no alerts in that window (/quiet off)

<b>Channels</b>
/channels — the channels watched
/add_channel <code>@name</code>, /remove_channel <code>@name</code> — admins only

<b>Queries</b>: words match any form (<code>Лавров</code> finds <code>Лаврова</code>), \
<code>"a phrase"</code>, <code>=exact</code>, <code>prefix*</code>, AND, OR, \
NOT or <code>-word</code>, parentheses, <code>/regex/i</code>, <code>#tag</code>, \
<code>$TICKER</code>, <code>@mention</code>, \
<code>domain:example.com</code>, <code>channel:name</code>, <code>lang:ru</code>, \
<code>topic:id</code>, <code>entity:id</code>."""


async def start(
    message: Message, command: CommandObject, bot: Bot, store: SubscriberStore, redis: redis.Redis
) -> None:
    if command.args:  # a deep link t.me/<bot>?start=<code>: a link code
        await link_with_code(message, bot, store, command.args)
        return
    subscriber = subscriber_of(message)
    await asyncio.to_thread(store.ensure_subscriber, subscriber, "telegram", message.chat.id)
    # A chat that blocked the bot was deactivated by delivery; /start means it is back.
    target = TelegramTarget(message.chat.id)
    await asyncio.to_thread(Ledger(redis).enable_target, target.key)
    await say(message, "👋 Welcome. Alerts for your watches arrive in this chat.\n\n" + HELP)


async def help_(message: Message) -> None:
    await say(message, HELP)


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router
