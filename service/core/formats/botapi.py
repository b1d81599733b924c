"""Bot API updates (``channel_post`` / ``edited_channel_post``) parsed into posts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from service.core.formats import content
from service.core.formats.albums import merge_albums
from service.core.formats.content import Content, is_int
from service.core.formats.result import FormatError, ParseResult, Rejected, failure_reason
from service.core.post import Entity, ForwardOrigin, Post, bare_channel_id, utf16_to_index

__all__ = [  # merge_albums lives in albums; sources import it from here with the parsers
    "MEDIA_FIELDS",
    "POST_KINDS",
    "bare_id",
    "classify_update",
    "merge_albums",
    "parse_update",
    "parse_update_lines",
    "parse_updates",
]

POST_KINDS = ("channel_post", "edited_channel_post")

# Message fields that carry content, in the order checked, with the kind a post records. A
# message with none of them and no text or caption is a service message (a pin, a giveaway
# notice, a boost, a gift, a title change, ...), whatever new kind Telegram invents next: those
# are recognised by that shape, so this list only has to know content, never service kinds.
# ``animation`` comes before ``document`` (a GIF carries both), ``venue`` before ``location``.
MEDIA_FIELDS = (
    ("paid_media", "paid_media"),
    ("photo", "photo"),
    ("video", "video"),
    ("animation", "animation"),
    ("video_note", "video_note"),
    ("voice", "voice"),
    ("audio", "audio"),
    ("sticker", "sticker"),
    ("document", "document"),
    ("poll", "poll"),
    ("checklist", "checklist"),
    ("giveaway", "giveaway"),
    ("giveaway_winners", "giveaway_winners"),
    ("invoice", "invoice"),
    ("venue", "venue"),
    ("location", "location"),
    ("contact", "contact"),
    ("dice", "dice"),
    ("game", "game"),
    ("story", "story"),
)

# Raw lone surrogates in a line can only come from bytes that were not UTF-8 (JSON escapes such
# as "\ud800" are still six ASCII characters at that point).
_UNDECODABLE_RE = re.compile("[\ud800-\udfff]")


def _int(value: object, what: str) -> int:
    if not is_int(value):
        raise FormatError(f"{what} is not an integer: {value!r:.60}")
    return value


def _timestamp(value: object, what: str) -> datetime:
    seconds = _int(value, what)
    try:
        return content.unix_time(seconds, what)
    except FormatError as exc:
        raise FormatError(f"{what} is not a valid Unix time: {str(seconds)[:30]}") from exc


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not an object")
    return value


def _optional_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise FormatError(f"{what} is not a string")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def bare_id(chat_id: int) -> str:
    """The bare id of a Bot API chat id (``-1001101806611`` → ``"1101806611"``)."""
    return str(bare_channel_id(chat_id))


def _entities(text: str, raw: object, what: str) -> tuple[Entity, ...]:
    """Message entities with UTF-16 offsets turned into string indices; FormatError if bad."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FormatError(f"{what} is not a list")
    table = utf16_to_index(text)
    entities: list[Entity] = []
    for position, item in enumerate(raw):
        entity = _dict(item, f"{what}[{position}]")
        type_ = entity.get("type")
        if not isinstance(type_, str):
            raise FormatError(f"{what}[{position}] has no type")
        offset = _int(entity.get("offset"), f"{what}[{position}].offset")
        length = _int(entity.get("length"), f"{what}[{position}].length")
        url = _optional_str(entity.get("url"), f"{what}[{position}].url")
        if type_ == "text_mention" and isinstance(entity.get("user"), dict):
            user_id = entity["user"].get("id")
            if is_int(user_id):
                url = f"tg://user?id={user_id}"
        emoji_id = entity.get("custom_emoji_id") if type_ == "custom_emoji" else None
        try:
            entities.append(
                Entity.from_utf16(
                    text,
                    table,
                    type_,
                    offset,
                    length,
                    url=url,
                    custom_emoji_id=str(emoji_id) if isinstance(emoji_id, str | int) else None,
                )
            )
        except ValueError as exc:
            raise FormatError(f"{what}[{position}]: {exc}") from exc
    return tuple(entities)


def _chat_name(chat: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    """(title, username, id) of a Chat object, each None when absent or mistyped."""
    chat_id = chat.get("id")
    return (
        _str_or_none(chat.get("title")),
        _str_or_none(chat.get("username")),
        chat_id if is_int(chat_id) else None,
    )


def _user_name(user: dict[str, Any]) -> str | None:
    parts = [user.get("first_name"), user.get("last_name")]
    name = " ".join(part for part in parts if isinstance(part, str) and part)
    return name or None


def _forward(message: dict[str, Any]) -> ForwardOrigin | None:
    """The origin from ``forward_origin``; the pre-7.0 ``forward_from_chat`` fields otherwise."""
    origin = message.get("forward_origin")
    if isinstance(origin, dict):
        kind = origin.get("type")
        message_id = origin.get("message_id")
        message_id = message_id if is_int(message_id) else None
        if kind == "channel" and isinstance(origin.get("chat"), dict):
            title, username, chat_id = _chat_name(origin["chat"])
            return ForwardOrigin(title, username, chat_id, message_id)
        if kind == "chat" and isinstance(origin.get("sender_chat"), dict):
            title, username, chat_id = _chat_name(origin["sender_chat"])
            return ForwardOrigin(title, username, chat_id, None)
        if kind == "user" and isinstance(origin.get("sender_user"), dict):
            user = origin["sender_user"]
            return ForwardOrigin(
                title=_user_name(user), username=_str_or_none(user.get("username"))
            )
        if kind == "hidden_user":
            return ForwardOrigin(title=_str_or_none(origin.get("sender_user_name")))
        return ForwardOrigin()
    legacy = message.get("forward_from_chat")
    if isinstance(legacy, dict):
        title, username, chat_id = _chat_name(legacy)
        message_id = message.get("forward_from_message_id")
        return ForwardOrigin(title, username, chat_id, message_id if is_int(message_id) else None)
    if "forward_from" in message or "forward_sender_name" in message:
        return ForwardOrigin(title=_str_or_none(message.get("forward_sender_name")))
    return None


def _media(message: dict[str, Any]) -> str | None:
    for field_name, kind in MEDIA_FIELDS:
        if message.get(field_name) is not None:
            return kind
    return None


def _text_field(holder: dict[str, Any], key: str, entities_key: str, what: str) -> tuple[str, Any]:
    """A text and its raw entities from an object (a poll, an option, a checklist task)."""
    text = _optional_str(holder.get(key), f"{what}.{key}") or ""
    return text, holder.get(entities_key)


def _media_text(message: dict[str, Any], media: str | None, found: Content) -> None:
    """Add what the message's media shows in words: poll, sticker, giveaway, checklist."""
    if media == "poll":
        poll = _dict(message["poll"], "poll")
        question, raw = _text_field(poll, "question", "question_entities", "poll")
        found.add("question", question, _entities(question, raw, "poll.question_entities"))
        options = poll.get("options") or []
        if not isinstance(options, list):
            raise FormatError("poll.options is not a list")
        for position, item in enumerate(options):
            option = _dict(item, f"poll.options[{position}]")
            text, raw = _text_field(option, "text", "text_entities", f"poll.options[{position}]")
            found.add("option", text, _entities(text, raw, f"poll.options[{position}]"))
    elif media == "sticker":
        sticker = _dict(message["sticker"], "sticker")
        found.add("emoji", _optional_str(sticker.get("emoji"), "sticker.emoji") or "")
    elif media in ("giveaway", "giveaway_winners"):
        giveaway = _dict(message[media], media)
        prize = _optional_str(giveaway.get("prize_description"), f"{media}.prize_description")
        found.add("prize", prize or "")
    elif media == "checklist":
        checklist = _dict(message["checklist"], "checklist")
        title, raw = _text_field(checklist, "title", "title_entities", "checklist")
        found.add("title", title, _entities(title, raw, "checklist.title_entities"))
        tasks = checklist.get("tasks") or []
        if not isinstance(tasks, list):
            raise FormatError("checklist.tasks is not a list")
        for position, item in enumerate(tasks):
            task = _dict(item, f"checklist.tasks[{position}]")
            text, raw = _text_field(task, "text", "text_entities", f"checklist.tasks[{position}]")
            found.add("item", text, _entities(text, raw, f"checklist.tasks[{position}]"))


def parse_update(update: dict[str, Any], *, source: str = "botapi") -> Post | None:
    """One Update as a post; None if it is not a channel post or is a service message;
    FormatError (only) if it is malformed."""
    outcome = classify_update(update, source=source)
    return outcome if isinstance(outcome, Post) else None


def classify_update(update: object, *, source: str = "botapi") -> Post | str:
    """One Update as a post, or why it is skipped (a ``SKIP_REASONS`` entry); FormatError (only)
    if it is malformed: whatever else the data makes go wrong is turned into one."""
    try:
        return _parse_update(update, source)
    except Exception as exc:  # the item boundary: nothing but FormatError leaves a parser
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"malformed update: {failure_reason(exc)}") from exc


def _parse_update(update: object, source: str) -> Post | str:
    update = _dict(update, "update")
    kind = next((name for name in POST_KINDS if name in update), None)
    if kind is None:
        return "not_channel_post"
    update_id = update.get("update_id")
    if update_id is not None and not (is_int(update_id) and 0 <= update_id < content.MAX_CHAT_ID):
        raise FormatError(f"update_id is not a valid update id: {str(update_id)[:30]}")
    message = _dict(update[kind], kind)
    message_id = content.message_id(message.get("message_id"), "message_id")
    if "chat" not in message:
        raise FormatError(f"{kind} {message_id} has no chat")
    chat = _dict(message["chat"], "chat")
    chat_id = content.chat_id(chat.get("id"), "chat.id")
    username = _optional_str(chat.get("username"), "chat.username")
    title = _optional_str(chat.get("title"), "chat.title")
    if "date" not in message:
        raise FormatError(f"{kind} {message_id} has no date")
    date = _timestamp(message["date"], "date")
    edit_date = None
    if message.get("edit_date") is not None:
        edit_date = _timestamp(message["edit_date"], "edit_date")

    found = Content()
    if message.get("text") is not None:
        text = _optional_str(message["text"], "text") or ""
        found.add("text", text, _entities(text, message.get("entities"), "entities"))
    elif message.get("caption") is not None:
        text = _optional_str(message["caption"], "caption") or ""
        found.add("caption", text, _entities(text, message.get("caption_entities"), "entities"))
    media = _media(message)
    _media_text(message, media, found)
    if not found and media is None:
        return "service"
    text, entities, parts = found.build()

    album_id = message.get("media_group_id")
    if album_id is not None and not isinstance(album_id, str | int):
        raise FormatError("media_group_id is not a string")
    reply = message.get("reply_to_message")
    reply_to = None
    if isinstance(reply, dict) and reply.get("message_id") is not None:
        reply_to = content.message_id(reply["message_id"], "reply_to_message.message_id")

    return Post(
        channel=username or f"c/{bare_id(chat_id)}",
        message_id=message_id,
        date=date,
        text=text,
        channel_id=chat_id,
        channel_title=title,
        edit_date=edit_date,
        edited=kind == "edited_channel_post" or edit_date is not None,
        entities=entities,
        forward=_forward(message),
        media=media,
        album_id=None if album_id is None else str(album_id),
        reply_to=reply_to,
        source=source,
        update_id=update_id,
        author=_optional_str(message.get("author_signature"), "author_signature"),
        parts=parts,
    )


def _parse_items(
    items: Iterable[tuple[int, object]], source_name: str, source: str, group_albums: bool
) -> ParseResult:
    result = ParseResult()
    for index, item in items:
        result.read += 1
        try:
            if not isinstance(item, dict):
                raise FormatError(f"update is a {type(item).__name__}, not an object")
            outcome = classify_update(item, source=source)
        except FormatError as exc:
            result.rejected.append(Rejected.of(source_name, index, str(exc), item))
            continue
        if isinstance(outcome, Post):
            result.posts.append(outcome)
        else:
            result.skip(outcome)
    if group_albums:
        result.posts = merge_albums(result.posts)
    return result


def parse_updates(
    data: object,
    *,
    source_name: str = "<input>",
    source: str = "botapi",
    group_albums: bool = True,
) -> ParseResult:
    """Updates from a list, a ``getUpdates`` response or one bare update (a webhook body).

    Album items are merged into one post (see ``merge_albums``) unless ``group_albums`` is False.
    """
    if isinstance(data, dict) and "ok" in data and "update_id" not in data:
        if data.get("ok") is not True:
            description = data.get("description", "no description")
            raise FormatError(f"getUpdates response is not ok: {str(description)[:200]}")
        data = data.get("result")
        if not isinstance(data, list):
            raise FormatError("getUpdates result is not a list")
    elif isinstance(data, dict) and "update_id" in data:
        data = [data]
    if not isinstance(data, list):
        raise FormatError(
            "not Bot API updates: expected a list of updates, a getUpdates response or an update"
        )
    return _parse_items(enumerate(data), source_name, source, group_albums)


def parse_update_lines(
    text: str,
    *,
    source_name: str = "<input>",
    source: str = "botapi",
    group_albums: bool = True,
) -> ParseResult:
    """Updates stored one JSON object per line; a bad line is rejected under its line number.

    A line that was not valid UTF-8 (decoded with surrogate escapes by the caller) is one bad
    line: it is set aside, never the file.
    """
    items: list[tuple[int, object]] = []
    bad_lines: list[Rejected] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if (undecodable := _UNDECODABLE_RE.search(line)) is not None:
            reason = f"not valid UTF-8 (bad byte at column {undecodable.start() + 1})"
            bad_lines.append(Rejected.of(source_name, number, reason, line))
            continue
        try:
            items.append((number, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            reason = "invalid JSON: nested too deeply" if isinstance(exc, RecursionError) else ""
            bad_lines.append(
                Rejected.of(source_name, number, reason or f"invalid JSON: {exc}", line)
            )
    if not items and bad_lines:
        raise FormatError(f"not JSON lines: no line is valid JSON ({bad_lines[0].reason})")
    result = _parse_items(items, source_name, source, group_albums)
    result.read += len(bad_lines)
    result.rejected = sorted(
        [*result.rejected, *bad_lines], key=lambda rejected: int(rejected.index)
    )
    return result
