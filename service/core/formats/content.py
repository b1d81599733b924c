"""What a person reads in a message, as one text with its parts marked, and the range checks
every parser applies to ids, dates and counts before they become a post.

A message's readable text is its text or caption, then what its media shows in words: a poll's
question and options, a sticker's emoji, a giveaway's prize description, a checklist's title and
items. ``Content`` collects those pieces (each with its entities) and joins them into the post's
``text``, ``entities`` and ``parts``, the same way for all three input formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeGuard

from service.core.formats.result import FormatError
from service.core.post import PART_SEPARATOR, Entity, TextPart

# Telegram message ids are positive 32-bit integers; anything else is not a message id (a
# 4,001-digit id once reached storage as ``inf`` and broke every reader after it).
MAX_MESSAGE_ID = 2**31 - 1
# Bot API chat and user ids have at most 52 significant bits ("safe in a double").
MAX_CHAT_ID = 2**53
# Telegram dates are unsigned 32-bit Unix times; later ones cannot be real (and overflow).
MAX_UNIX_TIME = 2**32 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime.fromtimestamp(MAX_UNIX_TIME, UTC)
# A shown view count above this is not a real count (Telegram's most viewed posts are ~10^8).
MAX_VIEWS = 10**12


def is_int(value: object) -> TypeGuard[int]:
    """True for a JSON integer (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def message_id(value: object, what: str = "message id") -> int:
    """A message id, range-checked; FormatError otherwise."""
    if not is_int(value):
        raise FormatError(f"{what} is not an integer: {value!r:.60}")
    if not 0 < value <= MAX_MESSAGE_ID:
        raise FormatError(f"{what} is out of range: {str(value)[:30]}")
    return value


def chat_id(value: object, what: str = "chat id") -> int:
    """A chat id in any of its forms (Bot API, bare, preview), range-checked."""
    if not is_int(value):
        raise FormatError(f"{what} is not an integer: {value!r:.60}")
    if value == 0 or abs(value) >= MAX_CHAT_ID:
        raise FormatError(f"{what} is out of range: {str(value)[:30]}")
    return value


def unix_time(seconds: int, what: str) -> datetime:
    """A Unix time as an aware UTC datetime; FormatError outside Telegram's range."""
    if not 0 <= seconds <= MAX_UNIX_TIME:
        raise FormatError(f"{what} is out of range: {str(seconds)[:30]}")
    return datetime.fromtimestamp(seconds, UTC)


def checked_date(value: datetime, what: str) -> datetime:
    """An aware datetime in UTC, refused outside Telegram's range (or when it cannot convert)."""
    try:
        converted = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise FormatError(f"{what} is out of range: {value.isoformat()[:40]}") from exc
    if not EARLIEST <= converted <= LATEST:
        raise FormatError(f"{what} is out of range: {value.isoformat()[:40]}")
    return converted


def views(value: int | None) -> int | None:
    """A view count, or None when it cannot be a real one."""
    if value is None or not 0 <= value <= MAX_VIEWS:
        return None
    return value


@dataclass
class Content:
    """The readable pieces of one message, in reading order."""

    pieces: list[tuple[str, str, tuple[Entity, ...]]] = field(default_factory=list)

    def add(self, kind: str, text: str, entities: tuple[Entity, ...] = ()) -> None:
        """Add a piece; empty pieces are left out (an empty caption is no text)."""
        if text:
            self.pieces.append((kind, text, entities))

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def build(self) -> tuple[str, tuple[Entity, ...], tuple[TextPart, ...]]:
        """The joined text, its entities (offsets into the joined text) and its parts."""
        texts: list[str] = []
        entities: list[Entity] = []
        parts: list[TextPart] = []
        offset = 0
        for kind, text, found in self.pieces:
            if texts:
                texts.append(PART_SEPARATOR)
                offset += len(PART_SEPARATOR)
            texts.append(text)
            parts.append(TextPart(kind, offset, len(text)))
            entities.extend(entity.shifted(offset) if offset else entity for entity in found)
            offset += len(text)
        return "".join(texts), tuple(entities), tuple(parts)
