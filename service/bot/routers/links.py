"""/link, /links and /unlink: a chat agrees to (or stops) receiving an API tenant's alerts.

A tenant's subscriptions may target a chat only after someone who speaks for the chat sent the
bot the tenant's one-time code (``/link <code>``, or the ``/start <code>`` of a deep link): the
person in a private chat, an administrator in a group. ``/unlink <owner>`` takes the chat out of
every subscription of that tenant at once.
"""

from __future__ import annotations

import asyncio

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from service.bot.replies import code, cut, esc, join_limited
from service.bot.routers.common import say
from service.store.subscribers import SubscriberStore

# Who in a group may speak for it (Telegram's member statuses).
_ADMIN_STATUSES = frozenset({"creator", "administrator"})


def owner_label(owner: str) -> str:
    """An owner as a chat sees it: ``api:acme`` reads ``acme (API)``."""
    kind, _, name = owner.partition(":")
    return f"{name} (API)" if kind == "api" else owner


async def speaks_for_chat(message: Message, bot: Bot) -> bool:
    """The sender is the private chat itself, or an administrator of the group."""
    if message.chat.type == "private":
        return True
    user = message.from_user
    if user is None:
        return False
    try:
        member = await bot.get_chat_member(message.chat.id, user.id)
    except TelegramAPIError:
        return False
    return str(member.status) in _ADMIN_STATUSES


async def link_with_code(message: Message, bot: Bot, store: SubscriberStore, given: str) -> None:
    """Redeem a link code sent from this chat (by /link or a /start deep link)."""
    if not await speaks_for_chat(message, bot):
        await say(message, "⛔ Only the group's admins can link it to an account.")
        return
    owner = await asyncio.to_thread(store.links.redeem, given.strip(), message.chat.id)
    if owner is None:
        await say(message, "❌ That code is not valid: it is wrong, used or expired.")
        return
    await say(
        message,
        f"🔗 This chat now receives the alerts {esc(owner_label(owner))} sends here. "
        f"Stop them with /unlink {code(owner)}",
    )


async def link(message: Message, command: CommandObject, bot: Bot, store: SubscriberStore) -> None:
    given = (command.args or "").strip()
    if not given:
        await say(message, "Usage: /link <code>CODE</code> (a code you got from an API user)")
        return
    await link_with_code(message, bot, store, given)


async def links(message: Message, store: SubscriberStore) -> None:
    owners = await asyncio.to_thread(store.links.owners, message.chat.id)
    if not owners:
        await say(message, "This chat is linked to no account.")
        return
    lines = [f"<b>Linked accounts ({len(owners)})</b>"]
    lines += [f"• {esc(owner_label(o))} — /unlink {code(o)}" for o in owners]
    await say(message, join_limited(lines))


async def unlink(
    message: Message, command: CommandObject, bot: Bot, store: SubscriberStore
) -> None:
    owner = (command.args or "").strip()
    if not owner:
        await say(message, "Usage: /unlink <code>owner</code> (see /links)")
        return
    if not await speaks_for_chat(message, bot):
        await say(message, "⛔ Only the group's admins can unlink it.")
        return
    done = await asyncio.to_thread(store.unlink_chat, owner, message.chat.id)
    if not done:
        await say(message, f"This chat is not linked to {code(cut(owner, 80))}. See /links.")
        return
    await say(message, f"✂️ Unlinked {esc(owner_label(owner))}: its alerts no longer come here.")


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="links")
    router.message.register(link, Command("link"))
    router.message.register(links, Command("links"))
    router.message.register(unlink, Command("unlink"))
    return router
