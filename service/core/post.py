"""The normalized post: one shape for every source, with a lossless JSON form."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

TELEGRAM_WEB = "https://t.me"

# What each stretch of a post's text is, so highlights and media-aware rules know what they hit:
# the message text or a media caption, a poll's question and options, a sticker's emoji, a
# giveaway's prize description, a checklist's title and items.
PART_KINDS = ("text", "caption", "question", "option", "emoji", "prize", "title", "item")
# Parts of one post are joined with this, so every poll option or checklist item is its own line.
PART_SEPARATOR = "\n"


# The Bot API names a channel -(10**12 + bare id) ("-100" then the bare id, for 10-digit ids).
CHANNEL_ID_BASE = 10**12


def bare_channel_id(channel_id: int) -> int:
    """The bare id of a channel from any of its forms (Bot API ``-100…``, preview ``-…``, export).

    Ids that do not follow the Bot API channel formula (small toy ids) are taken as they are,
    sign dropped, so every source of the same channel agrees on one key.
    """
    if channel_id <= -CHANNEL_ID_BASE:
        return -channel_id - CHANNEL_ID_BASE
    return abs(channel_id)


def utf16_to_index(text: str) -> list[int]:
    """Map every UTF-16 code-unit offset of ``text`` to a Python string index.

    The returned list has one entry per UTF-16 unit plus one for the end, so both an entity's
    start and its end (offset + length) can be looked up. A unit in the middle of a surrogate
    pair maps to the index of the character it belongs to.
    """
    table: list[int] = []
    for index, char in enumerate(text):
        units = 2 if ord(char) > 0xFFFF else 1
        table.extend([index] * units)
    table.append(len(text))
    return table


@dataclass(frozen=True, slots=True)
class Entity:
    """A Telegram message entity, with offsets in Python string indices (code points)."""

    type: str
    offset: int
    length: int
    text: str
    url: str | None = None
    custom_emoji_id: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def shifted(self, by: int) -> Entity:
        """The same entity ``by`` characters further into a longer text."""
        return replace(self, offset=self.offset + by)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "offset": self.offset,
            "length": self.length,
            "text": self.text,
        }
        if self.url is not None:
            data["url"] = self.url
        if self.custom_emoji_id is not None:
            data["custom_emoji_id"] = self.custom_emoji_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entity:
        emoji_id = data.get("custom_emoji_id")
        return cls(
            type=str(data["type"]),
            offset=int(data["offset"]),
            length=int(data["length"]),
            text=str(data["text"]),
            url=data.get("url"),
            custom_emoji_id=None if emoji_id is None else str(emoji_id),
        )

    @classmethod
    def from_utf16(
        cls,
        text: str,
        table: list[int],
        type_: str,
        offset: int,
        length: int,
        *,
        url: str | None = None,
        custom_emoji_id: str | None = None,
    ) -> Entity:
        """Build an entity from UTF-16 offsets (Bot API form) using a table from utf16_to_index."""
        if offset < 0 or length < 0 or offset + length > len(table) - 1:
            raise ValueError(f"entity {type_} at {offset}+{length} lies outside the text")
        start = table[offset]
        end = table[offset + length]
        return cls(
            type=type_,
            offset=start,
            length=end - start,
            text=text[start:end],
            url=url,
            custom_emoji_id=custom_emoji_id,
        )


@dataclass(frozen=True, slots=True)
class TextPart:
    """Which stretch of a post's text is what (one of ``PART_KINDS``), in string indices."""

    kind: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset, "length": self.length}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextPart:
        return cls(kind=str(data["kind"]), offset=int(data["offset"]), length=int(data["length"]))


@dataclass(frozen=True, slots=True)
class ForwardOrigin:
    """Where a forwarded post came from, as far as the source tells."""

    title: str | None = None
    username: str | None = None
    channel_id: int | None = None
    message_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "username": self.username,
            "channel_id": self.channel_id,
            "message_id": self.message_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForwardOrigin:
        return cls(
            title=data.get("title"),
            username=data.get("username"),
            channel_id=data.get("channel_id"),
            message_id=data.get("message_id"),
        )

    @property
    def link(self) -> str | None:
        if self.username and self.message_id is not None:
            return f"{TELEGRAM_WEB}/{self.username}/{self.message_id}"
        return None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _from_iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _require_utf8(value: str | None, what: str) -> None:
    """ValueError when ``value`` cannot be written as UTF-8 (a lone surrogate): such a string
    would fail later, in a hash, a JSON dump or a Redis write, far from the item that held it."""
    if not isinstance(value, str) or value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid Unicode (lone surrogate at {exc.start})") from None


def text_hash(text: str) -> str:
    """A short stable hash of a post's visible text (NFC), the identity of a version."""
    normalized = unicodedata.normalize("NFC", text)
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Post:
    """One version of one channel post, whatever source it came from.

    ``channel`` is the public username as Telegram spells it (``mfa_russia``); a private channel
    without one is named ``c/<bare id>``. ``channel_id`` is the Bot API form (``-100<bare id>``).
    Dates are timezone-aware UTC. ``entities`` carry Python string offsets into ``text``.

    ``text`` is what a person reads (see ``PART_KINDS``); ``parts`` says which stretch is which
    (empty on posts stored before parts existed: the whole text is then the message text).
    ``author`` is the post's signature, when the channel signs its posts. ``deleted`` marks the
    version a source recorded when the post was deleted in Telegram: stored, never alerted.
    """

    channel: str
    message_id: int
    date: datetime
    text: str = ""
    channel_id: int | None = None
    channel_title: str | None = None
    edit_date: datetime | None = None
    edited: bool = False
    entities: tuple[Entity, ...] = ()
    forward: ForwardOrigin | None = None
    media: str | None = None
    album_id: str | None = None
    album_items: tuple[int, ...] = ()
    reply_to: int | None = None
    views: int | None = None
    source: str = "unknown"
    update_id: int | None = None
    author: str | None = None
    parts: tuple[TextPart, ...] = ()
    content_hash: str = field(default="")
    deleted: bool = False

    def __post_init__(self) -> None:
        if self.date.tzinfo is None:
            raise ValueError("Post.date must be timezone-aware (UTC)")
        for what, value in (
            ("channel", self.channel),
            ("channel_title", self.channel_title),
            ("author", self.author),
            ("media", self.media),
            ("album_id", self.album_id),
            ("source", self.source),
        ):
            _require_utf8(value, what)
        for entity in self.entities:
            _require_utf8(entity.type, "entity type")
            _require_utf8(entity.url, "entity url")
            _require_utf8(entity.custom_emoji_id, "custom emoji id")
        if self.forward is not None:
            _require_utf8(self.forward.title, "forward title")
            _require_utf8(self.forward.username, "forward username")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", text_hash(self.text))

    @property
    def channel_key(self) -> str:
        """The channel name as used in keys and rules: usernames are case-insensitive."""
        return self.channel.lower()

    @property
    def key(self) -> str:
        """``channel/message_id``: the identity of the post across versions."""
        return f"{self.channel_key}/{self.message_id}"

    @property
    def version_key(self) -> str:
        """``channel/message_id@hash``: the identity of one version of the post."""
        return f"{self.key}@{self.content_hash}"

    @property
    def link(self) -> str:
        return f"{TELEGRAM_WEB}/{self.channel}/{self.message_id}"

    @property
    def is_edit(self) -> bool:
        return self.edited or self.edit_date is not None

    def part_texts(self, kind: str) -> list[str]:
        """The texts of every part of one kind ("option" gives each poll option)."""
        if not self.parts:
            return [self.text] if kind == "text" and self.text else []
        return [self.text[part.offset : part.end] for part in self.parts if part.kind == kind]

    def with_changes(self, **changes: Any) -> Post:
        """A copy with fields changed; the content hash follows the text."""
        if "text" in changes and "content_hash" not in changes:
            changes["content_hash"] = ""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "channel_id": self.channel_id,
            "channel_title": self.channel_title,
            "message_id": self.message_id,
            "date": _iso(self.date),
            "edit_date": _iso(self.edit_date),
            "edited": self.edited,
            "text": self.text,
            "entities": [entity.to_dict() for entity in self.entities],
            "forward": None if self.forward is None else self.forward.to_dict(),
            "media": self.media,
            "album_id": self.album_id,
            "album_items": list(self.album_items),
            "reply_to": self.reply_to,
            "views": self.views,
            "source": self.source,
            "update_id": self.update_id,
            "author": self.author,
            "parts": [part.to_dict() for part in self.parts],
            "link": self.link,
            "content_hash": self.content_hash,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Post:
        """Rebuild a post from ``to_dict`` output; raises ValueError/KeyError on bad data."""
        date = _from_iso(data["date"])
        if date is None:
            raise ValueError("post has no date")
        forward = data.get("forward")
        return cls(
            channel=str(data["channel"]),
            channel_id=data.get("channel_id"),
            channel_title=data.get("channel_title"),
            message_id=int(data["message_id"]),
            date=date,
            edit_date=_from_iso(data.get("edit_date")),
            edited=bool(data.get("edited", False)),
            text=str(data.get("text", "")),
            entities=tuple(Entity.from_dict(item) for item in data.get("entities", ())),
            forward=None if forward is None else ForwardOrigin.from_dict(forward),
            media=data.get("media"),
            album_id=data.get("album_id"),
            album_items=tuple(int(item) for item in data.get("album_items", ())),
            reply_to=data.get("reply_to"),
            views=data.get("views"),
            source=str(data.get("source", "unknown")),
            update_id=data.get("update_id"),
            author=data.get("author"),
            parts=tuple(TextPart.from_dict(item) for item in data.get("parts") or ()),
            content_hash=str(data.get("content_hash") or ""),
            deleted=bool(data.get("deleted", False)),
        )
