"""/channels for everyone; /add_channel and /remove_channel for admins (the preview poller)."""

from __future__ import annotations

import asyncio

import redis
from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from service.bot.access import BotAccess
from service.bot.replies import code, esc, join_limited
from service.bot.routers.common import say
from service.store import watchlist
from service.store.posts import PostStore


async def channels(message: Message, redis: redis.Redis, static_channels: list[str]) -> None:
    dynamic = await asyncio.to_thread(watchlist.channels, redis)
    stored = await asyncio.to_thread(PostStore(redis).channels)
    polled = sorted({c.lower() for c in static_channels} | set(dynamic))
    parts = [f"<b>Polled ({len(polled)})</b>"]
    parts.extend(f"• @{esc(name)}" for name in polled)
    others = sorted(set(stored) - set(polled))
    if others:
        parts.append(f"<b>Also seen in stored posts ({len(others)})</b>")
        parts.extend(f"• @{esc(name)}" for name in others)
    if not polled and not others:
        parts.append("none yet")
    await say(message, join_limited(parts))


async def _admin_only(message: Message, access: BotAccess) -> bool:
    user = message.from_user.id if message.from_user else None
    if access.is_admin(user):
        return True
    await say(message, "⛔ Only admins can change the channels.")
    return False


async def add_channel(
    message: Message, command: CommandObject, redis: redis.Redis, access: BotAccess
) -> None:
    if not await _admin_only(message, access):
        return
    try:
        name, new = await asyncio.to_thread(watchlist.add_channel, redis, command.args or "")
    except ValueError as exc:
        await say(message, f"❌ {esc(str(exc))}. Usage: /add_channel {code('@name')}")
        return
    await say(message, f"➕ @{esc(name)} {'added' if new else 'was already polled'}.")


async def remove_channel(
    message: Message, command: CommandObject, redis: redis.Redis, access: BotAccess
) -> None:
    if not await _admin_only(message, access):
        return
    try:
        name, was = await asyncio.to_thread(watchlist.remove_channel, redis, command.args or "")
    except ValueError as exc:
        await say(message, f"❌ {esc(str(exc))}. Usage: /remove_channel {code('@name')}")
        return
    await say(message, f"➖ @{esc(name)} {'removed' if was else 'was not in the list'}.")


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="channels")
    router.message.register(channels, Command("channels"))
    router.message.register(add_channel, Command("add_channel"))
    router.message.register(remove_channel, Command("remove_channel"))
    return router
