"""Files as a source: Bot API update dumps, Desktop exports and preview pages, into the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from service.core.formats.result import FormatError, Rejected
from service.sources.base import PostSink

log = structlog.get_logger(__name__)


@dataclass
class FileReport:
    """Counts per file and in total, for `tgwatch ingest` and the demo summary."""

    read: int = 0
    posts: int = 0
    enqueued: int = 0
    duplicates: int = 0
    set_aside: int = 0
    failed_files: list[str] = field(default_factory=list)


async def ingest_files(
    paths: Sequence[Path],
    sink: PostSink,
    *,
    chunk: int = 100,
    progress: Callable[[Path, int, int], None] | None = None,
    delay: float = 0.0,
) -> FileReport:
    """Parse each file (format auto-detected) and hand its posts to the sink in chunks.

    A malformed item is set aside through ``sink.reject`` and the rest of the file goes on; a file
    that cannot be read at all is reported and the other files still go through. ``progress`` is
    called with the file, the posts handled so far and the file's posts; ``delay`` paces a replay.
    """
    from service.core.formats.detect import parse_file

    report = FileReport()
    for path in paths:
        try:
            result = await asyncio.to_thread(parse_file, path)
        except (FormatError, OSError) as exc:
            report.failed_files.append(f"{path}: {exc}")
            await sink.reject(Rejected(str(path), "file", str(exc), ""))
            report.set_aside += 1
            log.error("file_unreadable", file=str(path), reason=str(exc))
            continue
        report.read += result.read
        report.posts += len(result.posts)
        for rejected in result.rejected:
            await sink.reject(rejected)
            report.set_aside += 1
        posts = sorted(result.posts, key=lambda post: (post.date, post.message_id))
        for start in range(0, len(posts), chunk):
            part = posts[start : start + chunk]
            fresh = await put_all(sink, part)
            report.enqueued += fresh
            report.duplicates += len(part) - fresh
            if progress is not None:
                progress(path, start + len(part), len(posts))
            if delay:
                await asyncio.sleep(delay)
        log.info("file_ingested", file=str(path), read=result.read, posts=len(result.posts),
                 set_aside=len(result.rejected))  # fmt: skip
    return report


async def put_all(sink: PostSink, posts: Sequence[object]) -> int:
    """Hand posts to a sink, in one call when it supports batches."""
    put_many = getattr(sink, "put_many", None)
    if put_many is not None:
        return int(await put_many(posts))
    fresh = 0
    for post in posts:
        fresh += bool(await sink.put(post))  # type: ignore[arg-type]
    return fresh
