"""The `tgwatch` command: each subcommand builds its own process's composition root."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import structlog

from service import __version__, constants
from service.config import ConfigError, Settings, load_settings
from service.logging import configure_logging
from service.redis import RedisHandle, connect

log = structlog.get_logger(__name__)

# Under the data dir: the embedded Redis of the demo, apart from real data.
DEMO_DATA = "demo"


@dataclass
class Root:
    """Settings and the Redis handle of one CLI process."""

    settings: Settings
    redis: RedisHandle


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"tgwatch: configuration error: {exc}", err=True)
        sys.exit(2)
    configure_logging(settings.log_format, settings.log_level)
    return settings


@contextmanager
def open_root(*, demo: bool = False) -> Iterator[Root]:
    """Read settings, configure logging, connect to Redis (embedded when no URL is set).

    The demo on the embedded default gets a Redis of its own under ``<data dir>/demo``, emptied
    first, so every demo run shows the whole pipeline and never mixes with real data.
    """
    settings = _settings()
    if demo and settings.redis_url is None:
        settings = settings.model_copy(update={"data_dir": settings.data_dir / DEMO_DATA})
    try:
        handle = connect(settings.redis_url, settings.data_dir)
        if demo and settings.redis_url is None:
            handle.client.flushdb()
    except Exception as exc:  # a connection failure of any kind: one clear line, no traceback
        click.echo(f"tgwatch: cannot reach Redis ({type(exc).__name__}): check TGWATCH_REDIS_URL",
                   err=True)  # fmt: skip
        sys.exit(2)
    try:
        yield Root(settings, handle)
    finally:
        handle.close()


def _load_rules_file(root: Root) -> None:
    """TGWATCH_RULES_FILE, if set, is imported at start (added and changed, nothing removed)."""
    path = root.settings.rules_file
    if path is None:
        return
    from service.core.rules import RulesError, load_rules
    from service.subscriptions_file import import_ruleset

    try:
        summary = import_ruleset(root.redis.client, load_rules(path))
    except RulesError as exc:
        for problem in exc.problems:
            where = f"{path}:{problem.line}" if problem.line else str(path)
            click.echo(f"tgwatch: TGWATCH_RULES_FILE {where}: {problem.message}", err=True)
        sys.exit(2)
    except (OSError, ValueError) as exc:
        click.echo(f"tgwatch: TGWATCH_RULES_FILE {path}: {exc}", err=True)
        sys.exit(2)
    log.info("rules_file_loaded", file=str(path), added=len(summary.added),
             changed=len(summary.changed))  # fmt: skip


def _worker_env(root: Root) -> dict[str, str]:
    from workers.runner import worker_env

    return worker_env(root.redis.url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tgwatch")
def cli() -> None:
    """tgwatch: real-time alerts on Telegram channel posts.

    Configuration comes from TGWATCH_* environment variables (or a .env file); with no
    TGWATCH_REDIS_URL an embedded Redis is started under TGWATCH_DATA_DIR (default ./data).
    """


# --- ingest ------------------------------------------------------------------------------------
@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False,
                                                                   path_type=Path))  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@click.option("--channel", metavar="NAME",
              help="Name the channel a file knows only by id (an export: c/<id>).")  # fmt: skip
@click.option("--tz", "zone", metavar="ZONE",
              help="Time zone of an old export's local dates; default UTC.")  # fmt: skip
@click.option("--allow-set-aside", is_flag=True,
              help="Exit 0 even when items were set aside (they still are).")  # fmt: skip
def ingest(files: tuple[Path, ...], progress: bool | None, channel: str | None,
           zone: str | None, allow_set_aside: bool) -> None:  # fmt: skip
    """Enqueue posts from FILES (Bot API updates, Desktop export, or t.me/s preview HTML).

    Prints how many items were read, enqueued, skipped as already seen, and set aside, and
    why. Exits 1 when items were set aside (see them with `tgwatch rejected`), unless
    --allow-set-aside.
    """
    from datetime import UTC

    from service.queue import Enqueuer
    from service.sources.files import (
        FileReport,
        ingest_files,
        parse_channel_name,
        parse_timezone,
        summarize,
    )

    try:
        name = None if channel is None else parse_channel_name(channel)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--channel") from None
    try:
        tz = UTC if zone is None else parse_timezone(zone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None
    with open_root() as root:
        enqueuer = Enqueuer(root.redis.client, batch_size=root.settings.batch_size,
                            batch_wait=root.settings.batch_wait)  # fmt: skip
        show = sys.stderr.isatty() if progress is None else progress
        total = sum(path.stat().st_size for path in files)

        async def go() -> FileReport:
            done: dict[Path, float] = {}
            with click.progressbar(length=total, label="ingesting", file=sys.stderr,
                                   hidden=not show, show_pos=False) as bar:  # fmt: skip

                def advance(path: Path, handled: int, posts: int) -> None:
                    # Progress in bytes of input: files of any size weigh what they hold.
                    share = path.stat().st_size * handled / max(posts, 1)
                    bar.update(int(share - done.get(path, 0.0)))
                    done[path] = share

                report = await ingest_files(list(files), enqueuer, progress=advance,
                                            channel=name, tz=tz)  # fmt: skip
                await enqueuer.close()
                return report

        report = asyncio.run(go())
        click.echo(
            f"read {report.read} items from {len(files)} file(s) ({total / 1024:.0f} KiB): "
            f"{enqueuer.stats.enqueued} enqueued in {enqueuer.stats.jobs} job(s), "
            f"{enqueuer.stats.duplicates} already seen, {report.set_aside} set aside"
        )
        lines, code = summarize(report, allow_set_aside=allow_set_aside)
        for line in lines:
            click.echo(line, err=True)
        if code:
            sys.exit(code)


# --- worker ------------------------------------------------------------------------------------
@cli.command()
@click.option("--burst", is_flag=True, help="Process until the queues are empty, then exit.")
@click.option("-n", "--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run.")  # fmt: skip
@click.option("--queue", "queues", multiple=True, help="Queue(s) to serve (default: all).")
def worker(burst: bool, processes: int, queues: tuple[str, ...]) -> None:
    """Run workers: non-forking RQ workers that process posts (and deliveries)."""
    from workers.runner import WorkerSpec, run_worker, start_worker_processes

    with open_root() as root:
        names = queues or default_queues()
        specs = [WorkerSpec(_worker_env(root), root.redis.url, tuple(names), burst, index)
                 for index in range(processes)]  # fmt: skip
        if processes == 1:
            run_worker(specs[0])
            return
        procs = start_worker_processes(specs)
        try:
            for proc in procs:
                proc.join()
        except KeyboardInterrupt:
            from workers.runner import stop_worker_processes

            stop_worker_processes(procs)


def default_queues() -> tuple[str, ...]:
    return (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)


# --- posts, status, rejected ------------------------------------------------------------------
@cli.command()
@click.argument("channel")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table")
def posts(channel: str, limit: int, fmt: str) -> None:
    """Show the recent stored posts of CHANNEL (newest first)."""
    from service.store.posts import PostStore

    with open_root() as root:
        found = PostStore(root.redis.client).recent(channel.lstrip("@"), limit)
        if not found:
            click.echo(f"no stored posts for {channel}", err=True)
            return
        for version in found:
            post = version.post
            if fmt == "jsonl":
                record = {**post.to_dict(), "enrichment": version.enrichment.to_dict(),
                          "version": version.seq + 1}  # fmt: skip
                click.echo(json.dumps(record, ensure_ascii=False))
                continue
            first_line = (
                post.text.strip().splitlines()[0] if post.text.strip() else f"[{post.media}]"
            )
            flags = " (edited)" if post.is_edit else ""
            click.echo(f"{post.link}  {post.date:%Y-%m-%d %H:%M}Z  v{version.seq + 1}{flags}")
            click.echo(f"    {first_line[:110]}")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def status(fmt: str) -> None:
    """Queues, workers, failed jobs, and channels with their watermark and health."""
    from service.status import collect_status, render_status

    with open_root() as root:
        report = collect_status(root.redis.client)
        if fmt == "json":
            click.echo(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        else:
            click.echo(render_status(report))


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def rejected(limit: int) -> None:
    """Show input that was set aside (malformed items), newest first, as JSON lines."""
    from service.queue import list_rejected

    with open_root() as root:
        for entry in list_rejected(root.redis.client, limit):
            click.echo(json.dumps(entry, ensure_ascii=False))


# --- listen and run ----------------------------------------------------------------------------
@cli.command()
@click.option("--source", "sources", multiple=True, type=click.Choice(["bot", "preview"]),
              help="Run only these sources (default: every configured one). The bot source "
                   "also answers subscribers' commands.")  # fmt: skip
def listen(sources: tuple[str, ...]) -> None:
    """Run the configured live sources (bot updates, web preview poller) until stopped."""
    from service.runtime import run_listeners

    with open_root() as root:
        _load_rules_file(root)
        asyncio.run(
            run_listeners(
                root.settings, root.redis.client, root.redis.url,
                sources=frozenset(sources) or None,
            )
        )  # fmt: skip


@cli.command()
@click.option("-w", "--workers", "n_workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default TGWATCH_WORKERS, 2).")  # fmt: skip
@click.option("--demo/--no-demo", default=None,
              help="Replay the bundled sample channel, deliver its alerts to a local webhook "
                   "and chat, and exit with a summary (default: on when no token and no "
                   "channels are configured).")  # fmt: skip
def run(n_workers: int | None, demo: bool | None) -> None:
    """Start everything for a single-machine install: listeners and N workers.

    Stops cleanly on Ctrl-C / SIGTERM: listeners flush what they hold to the queue, workers
    finish their current job; nothing queued is lost (it waits in Redis for the next start).
    """
    from service.runtime import run_service

    if demo is None:
        configured = _settings()
        demo = configured.telegram_token is None and not configured.channels
    with open_root(demo=demo) as root:
        settings = root.settings
        if not demo:
            _load_rules_file(root)
        if demo and "TGWATCH_LOG_LEVEL" not in os.environ:
            # The demo's output is its summary; per-post events would bury it.
            os.environ["TGWATCH_LOG_LEVEL"] = "warning"
            configure_logging(settings.log_format, "warning")
        summary = asyncio.run(
            run_service(settings, root.redis, n_workers or settings.workers, demo=demo)
        )
        if summary:
            click.echo(summary)


def _register_commands() -> None:
    """Commands of the other parts, joined in one place (each module owns its command)."""
    from service.api.commands import api_command, apikeys
    from service.bot.command import bot_command
    from service.commands.enrich import classify, eval_cmd, topics
    from service.commands.rules import backtest, rules
    from service.subscriptions_file import subscriptions

    for command in (backtest, rules, classify, topics, eval_cmd, subscriptions, bot_command,
                    api_command, apikeys):  # fmt: skip
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="tgwatch")


if __name__ == "__main__":
    main()
