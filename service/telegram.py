"""The one way tgwatch builds an aiogram Bot: on the configured Bot API server, HTML by default."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

# aiogram's own default request timeout is 60 s; a send or a command reply that takes longer is
# better retried than waited for. Long polls pass their own, longer, timeout per request.
DEFAULT_TIMEOUT_SECONDS = 20.0


def make_bot(token: str, api_url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Bot:
    """A Bot talking to ``api_url``: Telegram's, a self-hosted Bot API server, or a local one."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url), timeout=timeout)
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
