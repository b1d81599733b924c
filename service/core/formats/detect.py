"""Recognize which of the three input formats a file holds and parse it into posts."""

from __future__ import annotations

import json
from pathlib import Path

from service.core.formats.botapi import parse_update_lines, parse_updates
from service.core.formats.export import parse_export
from service.core.formats.preview import PAGE_MARKERS, parse_preview
from service.core.formats.result import FormatError, ParseResult

# Class names that only a t.me/s page carries; one of them in an HTML document marks a preview.
_PREVIEW_HINTS = tuple(marker.lstrip(".") for marker in PAGE_MARKERS)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (bad byte at offset {exc.start})") from exc


def _parse_html(text: str, source_name: str) -> ParseResult:
    if not any(hint in text for hint in _PREVIEW_HINTS):
        raise FormatError("HTML, but not a t.me/s preview page")
    page = parse_preview(text, source_name=source_name)
    return ParseResult(posts=page.posts, rejected=page.rejected, read=page.read)


def parse_json(data: object, *, source_name: str) -> ParseResult:
    """Parse decoded JSON: a Desktop export or Bot API updates, told apart by shape."""
    if isinstance(data, dict) and ("messages" in data or "chats" in data or "left_chats" in data):
        return parse_export(data, source_name=source_name)
    if isinstance(data, list) or (isinstance(data, dict) and ("update_id" in data or "ok" in data)):
        return parse_updates(data, source_name=source_name)
    raise FormatError(
        "JSON, but neither a Telegram Desktop export (messages/chats) nor Bot API updates "
        "(a list, a getUpdates response or an update)"
    )


def parse_bytes(data: bytes, *, source_name: str) -> ParseResult:
    """Detect the format of ``data`` and parse it; FormatError if it is none of the three.

    HTML with preview markup is a ``t.me/s`` page; JSON with ``messages`` or ``chats`` is a
    Desktop export; other JSON (a list, a ``getUpdates`` response, one update) and JSON lines
    are Bot API updates.
    """
    text = _decode(data)
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
            raise FormatError(f"not JSON, JSON lines or HTML: {whole_error}") from whole_error
        return parse_update_lines(text, source_name=source_name)
    return parse_json(decoded, source_name=source_name)


def parse_file(path: Path) -> ParseResult:
    """Read and parse one file; FormatError also when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return parse_bytes(data, source_name=str(path))
