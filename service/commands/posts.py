"""`tgwatch posts CHANNEL`: a channel's recent stored posts, newest first."""

from __future__ import annotations

import click


@click.command()
@click.argument("channel")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table")
def posts(channel: str, limit: int, fmt: str) -> None:
    """Show the recent stored posts of CHANNEL (newest first)."""
    import json

    from service.commands.root import open_root
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
