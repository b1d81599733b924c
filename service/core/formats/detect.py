"""Recognize which of the three input formats a file holds and parse it into posts."""

from __future__ import annotations

import json
from datetime import UTC, tzinfo
from pathlib import Path

from service.core.formats.botapi import parse_update_lines, parse_updates
from service.core.formats.export import parse_export
from service.core.formats.preview import PAGE_MARKERS, parse_preview
from service.core.formats.result import FormatError, ParseResult, printable

# Class names that only a t.me/s page carries; one of them in an HTML document marks a preview.
_PREVIEW_HINTS = tuple(marker.lstrip(".") for marker in PAGE_MARKERS)
# Posts of a channel known only by its id are named like this until someone names the channel.
ID_ONLY_PREFIX = "c/"


def _decode(data: bytes) -> tuple[str, str | None]:
    """The text of ``data`` and, when it was not all UTF-8, where it first went wrong.

    Bytes that are not UTF-8 are kept as surrogate escapes, so one bad byte costs only the line
    or item that holds it (whose text then cannot be stored, and is set aside), never the file.
    """
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8-sig", errors="surrogateescape")
        return text, f"not UTF-8 text (bad byte at offset {exc.start})"


def _parse_html(text: str, source_name: str) -> ParseResult:
    if not any(hint in text for hint in _PREVIEW_HINTS):
        raise FormatError("HTML, but not a t.me/s preview page")
    page = parse_preview(text, source_name=source_name)
    result = ParseResult(posts=page.posts, rejected=page.rejected, read=page.read)
    for reason, count in page.skipped.items():
        result.skip(reason, count)
    return result


def parse_json(
    data: object, *, source_name: str, channel: str | None = None, tz: tzinfo = UTC
) -> ParseResult:
    """Parse decoded JSON: a Desktop export or Bot API updates, told apart by shape."""
    if isinstance(data, dict) and ("messages" in data or "chats" in data or "left_chats" in data):
        return parse_export(data, source_name=source_name, channel=channel, tz=tz)
    if isinstance(data, list) or (isinstance(data, dict) and ("update_id" in data or "ok" in data)):
        return parse_updates(data, source_name=source_name)
    raise FormatError(
        "JSON, but neither a Telegram Desktop export (messages/chats) nor Bot API updates "
        "(a list, a getUpdates response or an update)"
    )


def _parse_text(text: str, source_name: str, channel: str | None, tz: tzinfo) -> ParseResult:
    stripped = text.lstrip()
    if not stripped:
        raise FormatError("empty input")
    if stripped.startswith("<"):
        return _parse_html(text, source_name)
    try:
        decoded = json.loads(text)
    except RecursionError as exc:
        raise FormatError("JSON nested too deeply") from exc
    except ValueError as whole_error:
        first_line = stripped.split("\n", 1)[0]
        try:
            json.loads(first_line)
        except (ValueError, RecursionError):
            reason = printable(str(whole_error)[:200])
            raise FormatError(f"not JSON, JSON lines or HTML: {reason}") from whole_error
        return parse_update_lines(text, source_name=source_name)
    return parse_json(decoded, source_name=source_name, channel=channel, tz=tz)


def name_channel(result: ParseResult, channel: str) -> None:
    """Give the id-only channel of ``result`` (``c/<id>``) the name ``channel``.

    Posts of channels with a username keep it. FormatError if the input holds several id-only
    channels: one name cannot tell which of them it means.
    """
    id_only = {post.channel for post in result.posts if post.channel.startswith(ID_ONLY_PREFIX)}
    if len(id_only) > 1:
        raise FormatError(
            f"a channel name was given but the input holds {len(id_only)} channels known only "
            f"by id ({', '.join(sorted(id_only)[:3])}, ...)"
        )
    result.posts = [
        post.with_changes(channel=channel) if post.channel in id_only else post
        for post in result.posts
    ]


def parse_bytes(
    data: bytes, *, source_name: str, channel: str | None = None, tz: tzinfo = UTC
) -> ParseResult:
    """Detect the format of ``data`` and parse it; FormatError if it is none of the three.

    HTML with preview markup is a ``t.me/s`` page; JSON with ``messages`` or ``chats`` is a
    Desktop export; other JSON (a list, a ``getUpdates`` response, one update) and JSON lines
    are Bot API updates. ``channel`` names a channel the input knows only by id; ``tz`` is the
    time zone of an old export's local dates (UTC by default).
    """
    text, bad_bytes = _decode(data)
    try:
        result = _parse_text(text, source_name, channel, tz)
    except FormatError as exc:
        raise FormatError(f"{bad_bytes}; {exc}" if bad_bytes else str(exc)) from exc
    if channel is not None:
        name_channel(result, channel)
    return result


def parse_file(path: Path, *, channel: str | None = None, tz: tzinfo = UTC) -> ParseResult:
    """Read and parse one file; FormatError also when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return parse_bytes(data, source_name=str(path), channel=channel, tz=tz)
