"""Telegram Desktop JSON exports (one chat or a whole account) parsed into channel posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from service.core.formats import content
from service.core.formats.albums import AlbumItem, export_album, joins_export_album
from service.core.formats.content import Content, is_int
from service.core.formats.result import FormatError, ParseResult, Rejected, failure_reason
from service.core.post import CHANNEL_ID_BASE, Entity, ForwardOrigin, Post

CHANNEL_TYPES = frozenset({"public_channel", "private_channel"})
# Supergroups are read like channels (their messages are what people in them read); personal
# chats, basic groups, bots and saved messages are not.
SUPERGROUP_TYPES = frozenset({"public_supergroup", "private_supergroup"})
READ_TYPES = CHANNEL_TYPES | SUPERGROUP_TYPES

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

# Message fields of other media, in the order checked, with the kind a post records. As in the
# Bot API parser, a message with none of them and no text is a service message by its shape.
MEDIA_FIELDS = (
    ("photo", "photo"),
    ("poll", "poll"),
    ("todo_list", "checklist"),
    ("giveaway_information", "giveaway"),
    ("giveaway_results", "giveaway_winners"),
    ("paid_stars_amount", "paid_media"),
    ("place_name", "venue"),
    ("location_information", "location"),
    ("contact_information", "contact"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
)


@dataclass(frozen=True)
class _Chat:
    channel: str
    channel_id: int
    title: str | None
    supergroup: bool = False


def _unixtime(value: object, what: str) -> datetime:
    """A ``*_unixtime`` field: a string of digits (an int is accepted too) as a UTC datetime."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 20:
        seconds = int(value)
    elif is_int(value):
        seconds = value
    else:
        raise FormatError(f"{what} is not a Unix time: {value!r:.60}")
    return content.unix_time(seconds, what)


def _local_date(value: object, what: str, tz: tzinfo) -> datetime:
    """An old export's ``date``/``edited``: ISO local time without offset, read in ``tz``."""
    if not isinstance(value, str) or len(value) > 40:
        raise FormatError(f"{what} is not a date: {value!r:.60}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FormatError(f"{what} is not an ISO date: {value!r:.60}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return content.checked_date(parsed, what)


def _entity(part: dict[str, Any], offset: int, piece: str) -> Entity:
    type_ = part["type"]
    url: str | None = None
    emoji_id: str | None = None
    if type_ == "text_link":
        href = part.get("href")
        url = href if isinstance(href, str) else None
    elif type_ == "mention_name":
        user_id = part.get("user_id")
        if is_int(user_id):
            url = f"tg://user?id={user_id}"
    elif type_ == "blockquote" and part.get("collapsed") is True:
        type_ = "expandable_blockquote"
    elif type_ == "custom_emoji" and isinstance(part.get("document_id"), str | int):
        emoji_id = str(part["document_id"])
    return Entity(
        type=ENTITY_TYPES.get(type_, type_),
        offset=offset,
        length=len(piece),
        text=piece,
        url=url,
        custom_emoji_id=emoji_id,
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


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not an object")
    return value


def _items(holder: dict[str, Any], keys: tuple[str, ...], what: str) -> list[object]:
    for key in keys:
        value = holder.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise FormatError(f"{what}.{key} is not a list")
            return value
    return []


def _media_text(message: dict[str, Any], media: str | None, found: Content) -> None:
    """Add what the message's media shows in words: poll, sticker, giveaway, checklist."""
    if media == "poll":
        poll = _object(message["poll"], "poll")
        found.add("question", *export_text(poll.get("question")))
        for position, answer in enumerate(_items(poll, ("answers",), "poll")):
            option = _object(answer, f"poll answer {position}")
            found.add("option", *export_text(option.get("text")))
    elif media == "sticker":
        emoji = message.get("sticker_emoji")
        found.add("emoji", emoji if isinstance(emoji, str) else "")
    elif media in ("giveaway", "giveaway_winners"):
        key = "giveaway_information" if media == "giveaway" else "giveaway_results"
        prize = _object(message[key], key).get("additional_prize")
        found.add("prize", prize if isinstance(prize, str) else "")
    elif media == "checklist":
        todo = _object(message["todo_list"], "todo_list")
        found.add("title", *export_text(todo.get("title")))
        for position, item in enumerate(_items(todo, ("items", "answers", "tasks"), "todo_list")):
            found.add("item", *export_text(_object(item, f"todo item {position}").get("text")))


def _forward(message: dict[str, Any]) -> ForwardOrigin | None:
    if "forwarded_from" not in message:
        return None
    title = message["forwarded_from"]
    origin_id = message.get("forwarded_from_id")
    channel_id = None
    if isinstance(origin_id, str) and origin_id.startswith("channel") and origin_id[7:].isdigit():
        bare = int(origin_id[7:]) if len(origin_id) <= 27 else 0
        channel_id = -(CHANNEL_ID_BASE + bare) if 0 < bare < content.MAX_CHAT_ID else None
    return ForwardOrigin(title=title if isinstance(title, str) else None, channel_id=channel_id)


def _parse_message(message: dict[str, Any], chat: _Chat, source: str, tz: tzinfo) -> Post | str:
    """One export message as a post, or why it is skipped (service, unsupported)."""
    try:
        return _message_post(message, chat, source, tz)
    except Exception as exc:  # the item boundary: nothing but FormatError leaves a parser
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"malformed message: {failure_reason(exc)}") from exc


def _date(message: dict[str, Any], message_id: int, tz: tzinfo) -> datetime:
    if "date_unixtime" in message:
        return _unixtime(message["date_unixtime"], "date_unixtime")
    if "date" in message:
        return _local_date(message["date"], "date", tz)
    raise FormatError(f"message {message_id} has no date_unixtime or date")


def _edit_date(message: dict[str, Any], tz: tzinfo) -> datetime | None:
    if message.get("edited_unixtime") is not None:
        return _unixtime(message["edited_unixtime"], "edited_unixtime")
    if message.get("edited") is not None:
        return _local_date(message["edited"], "edited", tz)
    return None


def _author(message: dict[str, Any], chat: _Chat) -> str | None:
    author = message.get("author")
    if isinstance(author, str) and author:
        return author
    sender = message.get("from")
    return sender if chat.supergroup and isinstance(sender, str) and sender else None


def _message_post(message: dict[str, Any], chat: _Chat, source: str, tz: tzinfo) -> Post | str:
    kind = message.get("type")
    if not isinstance(kind, str):
        raise FormatError("message has no type")
    if kind == "unsupported":
        return "unsupported"
    if kind != "message":
        return "service"
    message_id = content.message_id(message.get("id"), "id")
    date = _date(message, message_id, tz)
    edit_date = _edit_date(message, tz)
    media = _media(message)
    found = Content()
    raw_text = message["text"] if "text" in message else message.get("text_entities")
    found.add("caption" if media else "text", *export_text(raw_text))
    _media_text(message, media, found)
    if not found and media is None:
        return "service"
    text, entities, parts = found.build()
    reply_to = None
    if message.get("reply_to_message_id") is not None and "reply_to_peer_id" not in message:
        reply_to = content.message_id(message["reply_to_message_id"], "reply_to_message_id")
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
        forward=_forward(message),
        media=media,
        reply_to=reply_to,
        source=source,
        author=_author(message, chat),
        parts=parts,
    )


def _parse_chat(
    chat_data: dict[str, Any],
    chat: _Chat,
    source_name: str,
    source: str,
    prefix: str,
    *,
    tz: tzinfo,
) -> ParseResult:
    result = ParseResult()
    messages = chat_data.get("messages")
    if not isinstance(messages, list):
        raise FormatError("messages is not a list")
    group: list[AlbumItem] = []
    for position, message in enumerate(messages):
        result.read += 1
        index: int | str = f"{prefix}{position}" if prefix else position
        outcome: Post | str | None
        try:
            if not isinstance(message, dict):
                raise FormatError(f"message is a {type(message).__name__}, not an object")
            outcome = _parse_message(message, chat, source, tz)
        except FormatError as exc:
            result.rejected.append(Rejected.of(source_name, index, str(exc), message))
            outcome = None
        if not isinstance(outcome, Post):
            if outcome is not None:
                result.skip(outcome)
            if group:
                result.posts.append(export_album(group))
            group = []
            continue
        item = AlbumItem(outcome, message.get("from_id"))
        if group and joins_export_album(group, item):
            group.append(item)
            continue
        if group:
            result.posts.append(export_album(group))
        group = [item]
    if group:
        result.posts.append(export_album(group))
    return result


def _chat(chat_data: dict[str, Any], channel: str | None) -> _Chat:
    bare = abs(content.chat_id(chat_data.get("id"), "chat id"))
    if bare >= CHANNEL_ID_BASE:  # a Bot API form given where the bare id belongs
        bare -= CHANNEL_ID_BASE
    name = chat_data.get("name")
    return _Chat(
        channel=channel or f"c/{bare}",
        channel_id=-(CHANNEL_ID_BASE + bare),
        title=name if isinstance(name, str) else None,
        supergroup=chat_data.get("type") in SUPERGROUP_TYPES,
    )


def _chat_type(item: object) -> str | None:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if isinstance(kind, str) else None


def parse_export(
    data: dict[str, Any],
    *,
    source_name: str = "<input>",
    source: str = "export",
    channel: str | None = None,
    tz: tzinfo = UTC,
) -> ParseResult:
    """Channel (and supergroup) posts from a single-chat or a full-account export.

    Only ``"message"`` items become posts; service and unsupported ones are skipped and counted.
    Exports carry no username, so posts are named ``c/<bare id>`` unless ``channel`` gives the
    name (allowed only when the export holds a single such chat). Exports made before 2022 have
    no ``date_unixtime``; their ``date`` is the exporting machine's local time, read in ``tz``.
    """
    if not isinstance(data, dict):
        raise FormatError("not a Telegram Desktop export: the top level is not an object")
    if "messages" in data:
        kind = _chat_type(data)
        if kind not in READ_TYPES:
            raise FormatError(f"export of a {str(kind)[:40]} chat, not of a channel or supergroup")
        try:
            chat = _chat(data, channel)
        except FormatError as exc:
            raise FormatError(f"export chat is malformed: {exc}") from exc
        return _parse_chat(data, chat, source_name, source, "", tz=tz)
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
    result = ParseResult()
    readable: list[tuple[str, object]] = []
    for where, item in chats:
        if isinstance(item, dict) and _chat_type(item) not in READ_TYPES:
            messages = item.get("messages")
            count = len(messages) if isinstance(messages, list) else 0
            result.read += count
            result.skip("not_channel_post", count)
        else:
            readable.append((where, item))
    if channel is not None and len(readable) > 1:
        raise FormatError(f"a channel name was given but the export holds {len(readable)} channels")
    for where, item in readable:
        try:
            if not isinstance(item, dict):
                raise FormatError(f"chat is a {type(item).__name__}, not an object")
            chat = _chat(item, channel)
            result.extend(_parse_chat(item, chat, source_name, source, f"{where}/messages/", tz=tz))
        except FormatError as exc:
            result.read += 1
            result.rejected.append(Rejected.of(source_name, where, str(exc), item))
        except Exception as exc:  # the chat boundary: one broken chat never takes the others
            result.read += 1
            result.rejected.append(Rejected.of(source_name, where, failure_reason(exc), item))
    return result
