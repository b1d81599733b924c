"""`tgwatch status` and `tgwatch rejected`: what the pipeline holds, read from Redis."""

from __future__ import annotations

import click


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def status(fmt: str) -> None:
    """Queues, workers, failed jobs, dead letters, and channels with their watermark and health."""
    import json

    from service.commands.root import open_root
    from service.status import collect_status, render_status

    with open_root() as root:
        report = collect_status(root.redis.client)
        if fmt == "json":
            click.echo(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        else:
            click.echo(render_status(report))


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def rejected(limit: int) -> None:
    """Show input that was set aside (malformed items), newest first, as JSON lines."""
    import json

    from service.commands.root import open_root
    from service.store.rejected import list_rejected

    with open_root() as root:
        for entry in list_rejected(root.redis.client, limit):
            click.echo(json.dumps(entry, ensure_ascii=False))
