"""What every router's handlers share: sending an HTML reply and naming the chat's subscriber."""

from __future__ import annotations

from aiogram.enums import ParseMode
from aiogram.types import LinkPreviewOptions, Message

from service.store.subscribers import telegram_subscriber

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


async def say(message: Message, text: str) -> None:
    """Reply in HTML parse mode (``text`` is built escaped, within the limit), no link preview."""
    await message.answer(text, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW)


def subscriber_of(message: Message) -> str:
    return telegram_subscriber(message.chat.id)
