"""`tgwatch ingest`: enqueue posts from files (Bot API updates, Desktop exports, preview pages)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False,
                                                                   path_type=Path))  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def ingest(files: tuple[Path, ...], progress: bool | None) -> None:
    """Enqueue posts from FILES (Bot API updates, Desktop export, or t.me/s preview HTML).

    Prints how many items were read, enqueued, skipped as already seen, and set aside.
    """
    import asyncio

    from service.commands.root import open_root
    from service.queue import Enqueuer
    from service.sources.files import FileReport, ingest_files

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

                report = await ingest_files(list(files), enqueuer, progress=advance)
                await enqueuer.close()
                return report

        report = asyncio.run(go())
        failed = report.failed_files
        click.echo(
            f"read {report.read} items from {len(files)} file(s) ({total / 1024:.0f} KiB): "
            f"{enqueuer.stats.enqueued} enqueued in {enqueuer.stats.jobs} job(s), "
            f"{enqueuer.stats.duplicates} already seen, {report.set_aside} set aside"
        )
        for line in failed:
            click.echo(f"  unreadable: {line}", err=True)
        if report.set_aside:
            click.echo("  see them with: tgwatch rejected", err=True)
        if failed and len(failed) == len(files):
            sys.exit(1)
