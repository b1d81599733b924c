"""`tgwatch run`: listeners and N worker processes in one process group (or the demo)."""

from __future__ import annotations

import click

from service.commands.root import StopSignals


@click.command()
@click.option("-w", "--workers", "n_workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default TGWATCH_WORKERS, 2).")  # fmt: skip
@click.option("--demo/--no-demo", default=None,
              help="Replay the bundled sample channel on an embedded Redis of its own, deliver its "
                   "alerts to a local webhook and chat, and exit with a summary (default: on when "
                   "no Redis URL, no token and no channels are configured).")  # fmt: skip
def run(n_workers: int | None, demo: bool | None) -> None:
    """Start everything for a single-machine install: listeners and N workers.

    Stops cleanly on Ctrl-C / SIGTERM at any moment: listeners flush what they hold to the
    queue, workers finish their current job; nothing queued is lost (it waits in Redis for the
    next start). The demo never runs on a configured Redis: it keeps its own under the data dir.
    """
    signals = StopSignals().install()  # first: a stop while starting up is a clean stop
    import asyncio
    import os

    from service.commands.root import fail, load_rules_file, open_root, read_settings
    from service.logging import configure_logging
    from service.runtime import NoSourcesError, run_service

    settings = read_settings()
    if demo is None:
        demo = (
            settings.redis_url is None and settings.telegram_token is None and not settings.channels
        )
    with open_root(settings, demo=demo) as root:
        if not demo:
            load_rules_file(root)
        elif "TGWATCH_LOG_LEVEL" not in os.environ:
            # The demo's output is its summary; per-post events would bury it.
            os.environ["TGWATCH_LOG_LEVEL"] = "warning"
            configure_logging(settings.log_format, "warning", settings.secret_values())
        workers = n_workers or root.settings.workers
        try:
            summary = asyncio.run(run_service(root.settings, root.redis, workers, demo=demo,
                                              requested=signals.requested))  # fmt: skip
        except NoSourcesError as exc:
            fail(f"{exc} (or run the demo: tgwatch run --demo)", 2)
        except RuntimeError as exc:
            fail(f"a listener failed: {exc}", 1)
        if summary:
            click.echo(summary)
