"""Telegram Desktop JSON exports (one chat or a whole account) parsed into channel posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.core.formats.result import FormatError, ParseResult, Rejected
from service.core.post import CHANNEL_ID_BASE, Entity, ForwardOrigin, Post

CHANNEL_TYPES = frozenset({"public_channel", "private_channel"})

# Export entity type names that differ from the Bot API's; the others are the same in both.
ENTITY_TYPES = {
    "link": "url",
    "phone": "phone_number",
    "mention_name": "text_mention",
    "bank_card": "bank_card_number",
}

# ``media_type`` values of file messages, as Bot API media kinds.
MEDIA_TYPES = {
    "video_file": "video",
    "animation": "animation",
    "voice_message": "voice",
    "video_message": "video_note",
    "audio_file": "audio",
    "sticker": "sticker",
}

# Message fields of other media, in the order checked, with the kind a post records.
MEDIA_FIELDS = (
    ("photo", "photo"),
    ("poll", "poll"),
    ("location_information", "location"),
    ("contact_information", "contact"),
    ("place_name", "venue"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
)

# Telegram albums hold at most 10 items; the grouping heuristic never builds a larger one.
ALBUM_MAX_ITEMS = 10


@dataclass(frozen=True)
class _Chat:
    channel: str
    channel_id: int
    title: str | None


@dataclass(frozen=True)
class _Item:
    """A parsed message plus what the album heuristic compares."""

    post: Post
    from_id: object


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what} is not an integer: {value!r:.60}")
    return value


def _unixtime(value: object, what: str) -> datetime:
    """A ``*_unixtime`` field: a string of digits (an int is accepted too) as a UTC datetime."""
    if isinstance(value, str) and value.strip().isdigit():
        seconds = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        raise FormatError(f"{what} is not a Unix time: {value!r:.60}")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise FormatError(f"{what} is out of range: {seconds}") from exc


def _entity(part: dict[str, Any], offset: int, piece: str) -> Entity:
    type_ = part["type"]
    url: str | None = None
    if type_ == "text_link":
        href = part.get("href")
        url = href if isinstance(href, str) else None
    elif type_ == "mention_name":
        user_id = part.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            url = f"tg://user?id={user_id}"
    elif type_ == "blockquote" and part.get("collapsed") is True:
        type_ = "expandable_blockquote"
    return Entity(
        type=ENTITY_TYPES.get(type_, type_), offset=offset, length=len(piece), text=piece, url=url
    )


def export_text(value: object) -> tuple[str, tuple[Entity, ...]]:
    """The text and entities of an export ``text`` (or ``text_entities``) field.

    The field is a string, or an array of plain strings and ``{"type", "text", ...}`` parts.
    Entity offsets are string indices, counted as the parts are joined.
    """
    if value is None:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise FormatError(f"text is a {type(value).__name__}, not a string or an array")
    pieces: list[str] = []
    entities: list[Entity] = []
    offset = 0
    for position, part in enumerate(value):
        if isinstance(part, str):
            piece = part
        elif isinstance(part, dict):
            if not isinstance(part.get("text"), str) or not isinstance(part.get("type"), str):
                raise FormatError(f"text part {position} lacks a string type or text")
            piece = part["text"]
            if part["type"] != "plain" and piece:
                entities.append(_entity(part, offset, piece))
        else:
            raise FormatError(f"text part {position} is a {type(part).__name__}")
        pieces.append(piece)
        offset += len(piece)
    return "".join(pieces), tuple(entities)


def _media(message: dict[str, Any]) -> str | None:
    media_type = message.get("media_type")
    if isinstance(media_type, str):
        return MEDIA_TYPES.get(media_type, media_type)
    if message.get("file") is not None:
        return "document"
    for field_name, kind in MEDIA_FIELDS:
        if message.get(field_name) is not None:
            return kind
    return None


def _parse_message(message: dict[str, Any], chat: _Chat, source: str) -> Post | None:
    """One export message as a post; None for service and unsupported ones (skipped)."""
    try:
        return _message_post(message, chat, source)
    except FormatError:
        raise
    except ValueError as exc:
        # Lone surrogate escapes in the text or integers past Python's digit limit.
        raise FormatError(f"malformed message: {exc}") from exc


def _message_post(message: dict[str, Any], chat: _Chat, source: str) -> Post | None:
    kind = message.get("type")
    if not isinstance(kind, str):
        raise FormatError("message has no type")
    if kind != "message":
        return None
    message_id = _int(message.get("id"), "id")
    if "date_unixtime" not in message:
        raise FormatError(f"message {message_id} has no date_unixtime")
    date = _unixtime(message["date_unixtime"], "date_unixtime")
    edit_date = None
    if message.get("edited_unixtime") is not None:
        edit_date = _unixtime(message["edited_unixtime"], "edited_unixtime")
    raw_text = message["text"] if "text" in message else message.get("text_entities")
    text, entities = export_text(raw_text)
    forward = None
    if "forwarded_from" in message:
        title = message["forwarded_from"]
        forward = ForwardOrigin(title=title if isinstance(title, str) else None)
    reply_to = None
    if message.get("reply_to_message_id") is not None and "reply_to_peer_id" not in message:
        reply_to = _int(message["reply_to_message_id"], "reply_to_message_id")
    return Post(
        channel=chat.channel,
        message_id=message_id,
        date=date,
        text=text,
        channel_id=chat.channel_id,
        channel_title=chat.title,
        edit_date=edit_date,
        edited="edited" in message or edit_date is not None,
        entities=entities,
        forward=forward,
        media=_media(message),
        reply_to=reply_to,
        source=source,
    )


def _joins_album(group: list[_Item], item: _Item) -> bool:
    """Whether ``item`` continues the album that ``group`` started.

    A heuristic, because the export has no ``media_group_id``: Telegram Desktop writes an album
    as consecutive media messages with the same second of publication and sender, and only the
    first carries the caption (followers have ``text: ""``). Two separate media posts sent in the
    same second without captions would be merged too; that is rare in channels and costs only
    the split, not any text.
    """
    leader = group[0].post
    return (
        len(group) < ALBUM_MAX_ITEMS
        and leader.media is not None
        and item.post.media is not None
        and item.post.text == ""
        and item.post.date == leader.date
        and item.from_id == group[0].from_id
        and item.post.message_id > group[-1].post.message_id
    )


def _album(group: list[_Item]) -> Post:
    leader = group[0].post
    if len(group) == 1:
        return leader
    return leader.with_changes(album_items=tuple(item.post.message_id for item in group))


def _parse_chat(
    chat_data: dict[str, Any], chat: _Chat, source_name: str, source: str, prefix: str
) -> ParseResult:
    result = ParseResult()
    messages = chat_data.get("messages")
    if not isinstance(messages, list):
        raise FormatError("messages is not a list")
    group: list[_Item] = []
    for position, message in enumerate(messages):
        result.read += 1
        index: int | str = f"{prefix}{position}" if prefix else position
        try:
            if not isinstance(message, dict):
                raise FormatError(f"message is a {type(message).__name__}, not an object")
            post = _parse_message(message, chat, source)
        except FormatError as exc:
            result.rejected.append(Rejected.of(source_name, index, str(exc), message))
            post = None
        if post is None:
            if group:
                result.posts.append(_album(group))
            group = []
            continue
        item = _Item(post, message.get("from_id"))
        if group and _joins_album(group, item):
            group.append(item)
            continue
        if group:
            result.posts.append(_album(group))
        group = [item]
    if group:
        result.posts.append(_album(group))
    return result


def _chat(chat_data: dict[str, Any], channel: str | None) -> _Chat:
    bare = _int(chat_data.get("id"), "chat id")
    name = chat_data.get("name")
    return _Chat(
        channel=channel or f"c/{abs(bare)}",
        channel_id=-(CHANNEL_ID_BASE + abs(bare)),
        title=name if isinstance(name, str) else None,
    )


def parse_export(
    data: dict[str, Any],
    *,
    source_name: str = "<input>",
    source: str = "export",
    channel: str | None = None,
) -> ParseResult:
    """Channel posts from a single-chat or a full-account export (``chats`` and ``left_chats``).

    Only channel chats are read and only ``"message"`` items; service and unsupported ones are
    skipped. Exports carry no username, so posts are named ``c/<bare id>`` unless ``channel``
    gives the username (allowed only when the export holds a single channel).
    """
    if not isinstance(data, dict):
        raise FormatError("not a Telegram Desktop export: the top level is not an object")
    if "messages" in data:
        kind = data.get("type")
        if kind not in CHANNEL_TYPES:
            raise FormatError(f"export of a {kind!s} chat, not of a channel")
        try:
            chat = _chat(data, channel)
        except FormatError as exc:
            raise FormatError(f"export chat is malformed: {exc}") from exc
        return _parse_chat(data, chat, source_name, source, "")
    if "chats" not in data and "left_chats" not in data:
        raise FormatError("not a Telegram Desktop export: no messages and no chats")

    chats: list[tuple[str, object]] = []
    for section in ("chats", "left_chats"):
        if data.get(section) is None:
            continue
        listing = data[section].get("list") if isinstance(data[section], dict) else None
        if not isinstance(listing, list):
            raise FormatError(f"export {section}.list is not a list")
        chats.extend((f"{section}/{position}", item) for position, item in enumerate(listing))
    channels = [
        (where, item)
        for where, item in chats
        if not isinstance(item, dict) or item.get("type") in CHANNEL_TYPES
    ]
    if channel is not None and len(channels) > 1:
        raise FormatError(f"a channel name was given but the export holds {len(channels)} channels")
    result = ParseResult()
    for where, item in channels:
        try:
            if not isinstance(item, dict):
                raise FormatError(f"chat is a {type(item).__name__}, not an object")
            chat = _chat(item, channel)
            result.extend(_parse_chat(item, chat, source_name, source, f"{where}/messages/"))
        except FormatError as exc:
            result.read += 1
            result.rejected.append(Rejected.of(source_name, where, str(exc), item))
    return result
