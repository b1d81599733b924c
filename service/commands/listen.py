"""`tgwatch listen`: the live sources of this process, until stopped."""

from __future__ import annotations

import click

from service.commands.root import StopSignals


@click.command()
@click.option("--source", "sources", multiple=True,
              type=click.Choice(["bot", "preview", "mtproto"]),
              help="Run only these sources (default: every configured one). The bot source "
                   "also answers subscribers' commands.")  # fmt: skip
def listen(sources: tuple[str, ...]) -> None:
    """Run the configured live sources (bot updates, MTProto accounts, web preview poller).

    Exits non-zero when no source is configured or a source fails.
    """
    signals = StopSignals().install()
    import asyncio

    from service.commands.root import fail, load_rules_file, open_root
    from service.runtime import NoSourcesError, run_listeners, stop_event

    with open_root() as root:
        load_rules_file(root)

        async def go() -> None:
            stop = stop_event(signals.requested)
            await run_listeners(root.settings, root.redis.client, root.redis.url, stop,
                                sources=frozenset(sources) or None)  # fmt: skip

        try:
            asyncio.run(go())
        except NoSourcesError as exc:
            fail(str(exc), 2)
        except RuntimeError as exc:
            fail(f"a listener failed: {exc}", 1)
