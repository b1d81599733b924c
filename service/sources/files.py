"""Files as a source: Bot API update dumps, Desktop exports and preview pages, into the queue.

``ingest_files`` parses each file (format auto-detected), hands the posts to a sink and sets
bad items aside; ``summarize`` turns its report into the lines and exit code of
``tgwatch ingest``; ``parse_channel_name`` and ``parse_timezone`` check that command's options.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from service.core.formats.result import FormatError, Rejected, failure_reason, printable
from service.sources.base import PostSink

log = structlog.get_logger(__name__)

# Set-aside reasons listed by `tgwatch ingest`, most frequent first; the rest are counted.
SUMMARY_REASONS = 5
# Reasons are grouped without the ids and numbers they name ("message 12 has no date").
_NUMBER_RE = re.compile(r"\d+")
# A channel name given on the command line: the characters Telegram allows in a username.
_CHANNEL_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

EXIT_SET_ASIDE = 1


@dataclass
class FileReport:
    """Counts per file and in total, for `tgwatch ingest` and the demo summary."""

    read: int = 0
    posts: int = 0
    enqueued: int = 0
    duplicates: int = 0
    set_aside: int = 0
    failed_files: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    files: int = 0


def parse_channel_name(value: str) -> str:
    """A channel name for ``--channel`` (a username, ``@`` allowed); ValueError otherwise."""
    name = value.strip().removeprefix("@")
    if not _CHANNEL_RE.fullmatch(name):
        raise ValueError(f"not a channel username: {printable(value)[:64]!r}")
    return name


def parse_timezone(value: str) -> tzinfo:
    """A time zone for ``--tz`` (an IANA name such as Europe/Moscow, or UTC); ValueError."""
    if value.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {printable(value)[:64]!r}") from exc


def _reason_key(reason: str) -> str:
    return _NUMBER_RE.sub("N", reason)[:120]


async def _set_aside(sink: PostSink, report: FileReport, rejected: Rejected) -> None:
    await sink.reject(rejected)
    report.set_aside += 1
    report.reasons[_reason_key(rejected.reason)] += 1


async def ingest_files(
    paths: Sequence[Path],
    sink: PostSink,
    *,
    chunk: int = 100,
    progress: Callable[[Path, int, int], None] | None = None,
    delay: float = 0.0,
    channel: str | None = None,
    tz: tzinfo = UTC,
) -> FileReport:
    """Parse each file (format auto-detected) and hand its posts to the sink in chunks.

    A malformed item is set aside through ``sink.reject`` and the rest of the file goes on; a
    file that cannot be read or parsed at all is set aside whole and the other files still go
    through. ``channel`` names a channel a file knows only by id, ``tz`` is the time zone of an
    old export's dates. ``progress`` is called with the file, the posts handled so far and the
    file's posts; ``delay`` paces a replay.
    """
    from service.core.formats.detect import parse_file

    report = FileReport(files=len(paths))
    for path in paths:
        name = printable(str(path))
        try:
            result = await asyncio.to_thread(parse_file, path, channel=channel, tz=tz)
        except Exception as exc:  # the file boundary: one file never takes the others
            reason = str(exc) if isinstance(exc, FormatError | OSError) else failure_reason(exc)
            report.failed_files.append(f"{name}: {printable(reason)}")
            await _set_aside(sink, report, Rejected(name, "file", reason, ""))
            log.error("file_unreadable", file=name, reason=printable(reason))
            continue
        report.read += result.read
        report.posts += len(result.posts)
        report.skipped.update(result.skipped)
        for rejected in result.rejected:
            await _set_aside(sink, report, rejected)
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
        log.info("file_ingested", file=name, read=result.read, posts=len(result.posts),
                 set_aside=len(result.rejected), skipped=dict(result.skipped))  # fmt: skip
    return report


def summarize(report: FileReport, *, allow_set_aside: bool = False) -> tuple[list[str], int]:
    """The lines `tgwatch ingest` prints after its count line, and its exit code.

    Items set aside make the ingest fail (exit 1) unless ``allow_set_aside``; with it, only an
    ingest where no file could be read at all fails.
    """
    lines: list[str] = []
    if report.skipped:
        counts = ", ".join(f"{count} {reason}" for reason, count in report.skipped.most_common())
        lines.append(f"  skipped on purpose: {counts}")
    lines.extend(f"  unreadable: {line}" for line in report.failed_files)
    if report.set_aside:
        lines.append(f"  set aside: {report.set_aside} item(s), see them with: tgwatch rejected")
        for reason, count in report.reasons.most_common(SUMMARY_REASONS):
            lines.append(f"    {count} × {reason}")
        others = len(report.reasons) - SUMMARY_REASONS
        if others > 0:
            lines.append(f"    … and {others} other reason(s)")
    all_failed = bool(report.failed_files) and len(report.failed_files) >= report.files
    if all_failed:
        return lines, EXIT_SET_ASIDE
    if report.set_aside and not allow_set_aside:
        lines.append("  failing because items were set aside (--allow-set-aside accepts that)")
        return lines, EXIT_SET_ASIDE
    return lines, 0


async def put_all(sink: PostSink, posts: Sequence[object]) -> int:
    """Hand posts to a sink, in one call when it supports batches."""
    put_many = getattr(sink, "put_many", None)
    if put_many is not None:
        return int(await put_many(posts))
    fresh = 0
    for post in posts:
        fresh += bool(await sink.put(post))  # type: ignore[arg-type]
    return fresh
