"""`tgwatch ingest`: enqueue posts from files (Bot API updates, Desktop exports, preview pages)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
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
    import asyncio
    from datetime import UTC

    from service.commands.root import open_root
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
