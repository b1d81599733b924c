"""`tgwatch bot`: the subscriber bot on its own, for installs whose listener reads no bot token.

When `tgwatch run` or `tgwatch listen` has TGWATCH_TELEGRAM_TOKEN, the bot listener already
serves these commands (one token allows one getUpdates consumer); do not run both.
"""

from __future__ import annotations

import click

from service.commands.root import StopSignals


@click.command("bot")
def bot() -> None:
    """Run the subscriber bot alone (long polling) until Ctrl-C / SIGTERM.

    Who may use it: TGWATCH_BOT_ALLOWED (comma-separated user or chat ids; empty: everyone);
    admins (channel changes): TGWATCH_BOT_ADMINS. `tgwatch run`/`listen` with a token serve the
    same commands; run this only where no listener reads the bot's updates.
    """
    signals = StopSignals().install()
    import asyncio
    from contextlib import AsyncExitStack

    import structlog

    from service.commands.root import fail, open_root
    from service.metrics import Metrics
    from service.runtime import serve_ops, stop_event

    log = structlog.get_logger(__name__)
    with open_root() as root:
        token = root.settings.telegram_token
        if token is None:
            fail("the bot needs TGWATCH_TELEGRAM_TOKEN", 2)
        from service.bot.access import BotAccess
        from service.bot.app import BotRefusedError, build_dispatcher, run_bot
        from service.telegram import make_bot

        access = BotAccess.from_settings(root.settings.bot)
        dispatcher = build_dispatcher(
            root.redis.client, access, root.settings.channels, root.settings.limits
        )
        bot_client = make_bot(token.get_secret_value(), root.settings.telegram_api_url)
        log.info("bot_starting", allowed=len(access.allowed), admins=len(access.admins))

        async def serve() -> None:
            stop = stop_event(signals.requested)
            async with AsyncExitStack() as stack:
                await serve_ops(root.settings, root.redis.client, Metrics(),
                                root.settings.metrics_port, stack)  # fmt: skip
                await run_bot(bot_client, dispatcher, stop)

        try:
            asyncio.run(serve())
        except BotRefusedError as exc:
            fail(str(exc), 1)
