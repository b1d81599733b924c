"""`tgwatch bot`: the subscriber bot on its own, for installs whose listener reads no bot token.

When `tgwatch run` or `tgwatch listen` has TGWATCH_TELEGRAM_TOKEN, the bot listener already
serves these commands (one token allows one getUpdates consumer); do not run both.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import click
import structlog

log = structlog.get_logger(__name__)


@click.command("bot")
def bot_command() -> None:
    """Run the subscriber bot alone (long polling) until Ctrl-C / SIGTERM.

    Who may use it: TGWATCH_BOT_ALLOWED (comma-separated user or chat ids; empty: everyone);
    admins (channel changes): TGWATCH_BOT_ADMINS. `tgwatch run`/`listen` with a token serve the
    same commands; run this only where no listener reads the bot's updates.
    """
    from service.bot.app import build_bot, build_dispatcher, run_bot
    from service.bot.settings import BotAccess, BotSettings
    from service.cli import open_root
    from service.metrics import Metrics
    from service.runtime import start_ops

    with open_root() as root:
        token = root.settings.telegram_token
        if token is None:
            click.echo("tgwatch: the bot needs TGWATCH_TELEGRAM_TOKEN", err=True)
            raise SystemExit(2)
        access = BotAccess.from_settings(BotSettings())
        dispatcher = build_dispatcher(root.redis.client, access, root.settings.channels)
        bot = build_bot(token.get_secret_value(), root.settings.telegram_api_url)
        log.info("bot_starting", allowed=len(access.allowed), admins=len(access.admins))

        async def serve() -> None:
            async with AsyncExitStack() as stack:
                await start_ops(root.settings, root.redis.client, Metrics(), stack)
                await run_bot(bot, dispatcher)

        asyncio.run(serve())
