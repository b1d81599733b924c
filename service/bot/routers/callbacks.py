"""The buttons under an alert (``service.core.render``'s callback data): mute 1 h, unwatch."""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.types import CallbackQuery

from service import constants
from service.core.render import CALLBACK_MUTE, CALLBACK_UNWATCH, parse_callback_data
from service.store.subscribers import SubscriberStore

# Telegram shows a callback answer's text in a toast of at most 200 characters.
_TOAST_CHARS = 200


async def alert_button(query: CallbackQuery, store: SubscriberStore) -> None:
    action, sub_id, argument = parse_callback_data(query.data or "")
    chat_id = query.message.chat.id if query.message is not None else None
    if chat_id is None:
        await query.answer("This message is too old to act on.", show_alert=False)
        return
    sub = await asyncio.to_thread(store.find_for_chat, sub_id, chat_id)
    if sub is None:
        await query.answer("This watch no longer exists.", show_alert=False)
        return
    if action == CALLBACK_MUTE:
        seconds = int(argument) if argument.isdigit() else constants.MUTE_BUTTON_SECONDS
        seconds = min(seconds, constants.MUTE_MAX_SECONDS)
        await asyncio.to_thread(store.mute, sub.id, seconds)
        hours = seconds / 3600
        text = f"🔕 {sub.name} muted for {hours:g} h"
    else:
        await asyncio.to_thread(store.unwatch_for_chat, sub.id, chat_id)
        text = f"🗑 Stopped {sub.name}"
    await query.answer(text[:_TOAST_CHARS])


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="callbacks")
    router.callback_query.register(
        alert_button,
        F.data.startswith(f"{CALLBACK_MUTE}:") | F.data.startswith(f"{CALLBACK_UNWATCH}:"),
    )
    return router
