"""The buttons under an alert (``service.core.render``'s callback data): mute 1 h, unwatch.

Callback data comes from the client and is read as hostile: an argument that is not plain ASCII
digits mutes for the default hour. A chat mutes only the watches it owns; "unwatch" on a
tenant's subscription delivering to the chat takes only the chat out of it.
"""

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
    if action == CALLBACK_MUTE:
        text = await _mute(store, sub_id, argument, chat_id)
    else:
        text = await _unwatch(store, sub_id, chat_id)
    await query.answer(text[:_TOAST_CHARS])


def mute_seconds(argument: str) -> int:
    """The mute the button asks for, within MUTE_MAX_SECONDS (the default hour if unreadable)."""
    digits = argument.isascii() and argument.isdigit() and len(argument) <= 9
    seconds = int(argument) if digits else constants.MUTE_BUTTON_SECONDS
    return max(1, min(seconds, constants.MUTE_MAX_SECONDS))


async def _mute(store: SubscriberStore, sub_id: str, argument: str, chat_id: int) -> str:
    sub = await asyncio.to_thread(store.find_for_chat, sub_id, chat_id)
    if sub is None:
        others = await asyncio.to_thread(store.delivered_to_chat, chat_id)
        if any(other.id == sub_id for other in others):
            return "This watch is not yours to mute; stop receiving it with Unwatch."
        return "This watch no longer exists."
    seconds = mute_seconds(argument)
    await asyncio.to_thread(store.mute, sub.id, seconds, sub.owner)
    return f"🔕 {sub.name} muted for {seconds / 3600:g} h"


async def _unwatch(store: SubscriberStore, sub_id: str, chat_id: int) -> str:
    done = await asyncio.to_thread(store.unwatch_for_chat, sub_id, chat_id)
    if done is None:
        return "This watch no longer exists."
    return "🗑 Stopped" if done == "deleted" else "🗑 Its alerts no longer come here"


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="callbacks")
    router.callback_query.register(
        alert_button,
        F.data.startswith(f"{CALLBACK_MUTE}:") | F.data.startswith(f"{CALLBACK_UNWATCH}:"),
    )
    return router
