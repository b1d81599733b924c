"""/digest and /quiet: a chat's delivery settings, merged into every watch delivering to it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from service.bot.replies import code, esc
from service.bot.routers.common import say
from service.core.schedule import DIGEST_MODES, QuietHours
from service.store.subscribers import SubscriberStore

DIGEST_HELP = {
    "off": "alerts arrive one by one, as they happen",
    "15m": "alerts are collected and sent every 15 minutes",
    "1h": "alerts are collected and sent every hour",
    "daily": "alerts are collected and sent once a day",
}


async def digest(message: Message, command: CommandObject, store: SubscriberStore) -> None:
    mode = (command.args or "").strip().lower()
    if mode not in DIGEST_MODES:
        current = await asyncio.to_thread(store.settings_for_chat, message.chat.id)
        await say(
            message, f"Digest is {code(current.digest)}. Usage: /digest {'|'.join(DIGEST_MODES)}"
        )
        return
    settings = await asyncio.to_thread(store.settings_for_chat, message.chat.id)
    count = await asyncio.to_thread(
        store.set_settings, message.chat.id, replace(settings, digest=mode)
    )
    await say(
        message,
        f"🗞 Digest {code(mode)}: {esc(DIGEST_HELP[mode])} "
        f"({count} watch{'es' if count != 1 else ''} updated).",
    )


async def quiet(message: Message, command: CommandObject, store: SubscriberStore) -> None:
    args = (command.args or "").split()
    settings = await asyncio.to_thread(store.settings_for_chat, message.chat.id)
    if args == ["off"]:
        await asyncio.to_thread(store.set_settings, message.chat.id, replace(settings, quiet=None))
        await say(message, "🔔 Quiet hours off.")
        return
    if len(args) not in (1, 2):
        now = settings.quiet
        shown = f"{now.start:%H:%M}-{now.end:%H:%M} {now.tz}" if now else "off"
        await say(
            message,
            f"Quiet hours: {code(shown)}. Usage: /quiet "
            f"{code('23:00-07:00 Europe/Moscow')} or /quiet off",
        )
        return
    try:
        window = QuietHours.parse(args[0], args[1] if len(args) == 2 else "UTC")
    except ValueError as exc:
        await say(
            message, f"❌ {esc(str(exc))}. Example: /quiet {code('23:00-07:00 Europe/Moscow')}"
        )
        return
    await asyncio.to_thread(store.set_settings, message.chat.id, replace(settings, quiet=window))
    await say(
        message,
        f"🌙 Quiet hours {code(f'{window.start:%H:%M}-{window.end:%H:%M}')} "
        f"({esc(window.tz)}): alerts in that window arrive when it ends.",
    )


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="settings")
    router.message.register(digest, Command("digest"))
    router.message.register(quiet, Command("quiet"))
    return router
