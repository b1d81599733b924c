"""Bot API updates (``channel_post`` / ``edited_channel_post``) parsed into posts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from service.core.formats.result import FormatError, ParseResult, Rejected
from service.core.post import Entity, ForwardOrigin, Post, bare_channel_id, utf16_to_index

POST_KINDS = ("channel_post", "edited_channel_post")

# Message fields that carry media, in the order checked, with the kind a post records.
# ``animation`` comes before ``document`` because the server sends both for a GIF.
MEDIA_FIELDS = (
    ("photo", "photo"),
    ("video", "video"),
    ("animation", "animation"),
    ("video_note", "video_note"),
    ("voice", "voice"),
    ("audio", "audio"),
    ("sticker", "sticker"),
    ("document", "document"),
    ("poll", "poll"),
    ("venue", "venue"),
    ("location", "location"),
    ("contact", "contact"),
    ("dice", "dice"),
    ("game", "game"),
    ("story", "story"),
    ("paid_media", "paid_media"),
)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what} is not an integer: {value!r:.60}")
    return value


def _timestamp(value: object, what: str) -> datetime:
    seconds = _int(value, what)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise FormatError(f"{what} is not a valid Unix time: {seconds}") from exc


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not an object")
    return value


def _optional_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise FormatError(f"{what} is not a string")


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
            if isinstance(user_id, int) and not isinstance(user_id, bool):
                url = f"tg://user?id={user_id}"
        try:
            entities.append(Entity.from_utf16(text, table, type_, offset, length, url=url))
        except ValueError as exc:
            raise FormatError(f"{what}[{position}]: {exc}") from exc
    return tuple(entities)


def _chat_name(chat: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    """(title, username, id) of a Chat object, each None when absent or mistyped."""
    title = chat.get("title")
    username = chat.get("username")
    chat_id = chat.get("id")
    return (
        title if isinstance(title, str) else None,
        username if isinstance(username, str) else None,
        chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None,
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
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            message_id = None
        if kind == "channel" and isinstance(origin.get("chat"), dict):
            title, username, chat_id = _chat_name(origin["chat"])
            return ForwardOrigin(title, username, chat_id, message_id)
        if kind == "chat" and isinstance(origin.get("sender_chat"), dict):
            title, username, chat_id = _chat_name(origin["sender_chat"])
            return ForwardOrigin(title, username, chat_id, None)
        if kind == "user" and isinstance(origin.get("sender_user"), dict):
            user = origin["sender_user"]
            username = user.get("username")
            return ForwardOrigin(
                title=_user_name(user), username=username if isinstance(username, str) else None
            )
        if kind == "hidden_user":
            name = origin.get("sender_user_name")
            return ForwardOrigin(title=name if isinstance(name, str) else None)
        return ForwardOrigin()
    legacy = message.get("forward_from_chat")
    if isinstance(legacy, dict):
        title, username, chat_id = _chat_name(legacy)
        message_id = message.get("forward_from_message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            message_id = None
        return ForwardOrigin(title, username, chat_id, message_id)
    if "forward_from" in message or "forward_sender_name" in message:
        name = message.get("forward_sender_name")
        return ForwardOrigin(title=name if isinstance(name, str) else None)
    return None


def _media(message: dict[str, Any]) -> str | None:
    for field_name, kind in MEDIA_FIELDS:
        if message.get(field_name) is not None:
            return kind
    return None


def parse_update(update: dict[str, Any], *, source: str = "botapi") -> Post | None:
    """One Update as a post; None if it is not a channel post; FormatError if it is malformed."""
    try:
        return _parse_update(update, source)
    except FormatError:
        raise
    except ValueError as exc:
        # What the checks do not foresee but the data can hold: a lone surrogate escape in the
        # text (unhashable as UTF-8), an integer past Python's digit limit.
        raise FormatError(f"malformed update: {exc}") from exc


def _parse_update(update: dict[str, Any], source: str) -> Post | None:
    update = _dict(update, "update")
    kind = next((name for name in POST_KINDS if name in update), None)
    if kind is None:
        return None
    update_id = update.get("update_id")
    update_id = None if update_id is None else _int(update_id, "update_id")
    message = _dict(update[kind], kind)
    message_id = _int(message.get("message_id"), "message_id")
    if "chat" not in message:
        raise FormatError(f"{kind} {message_id} has no chat")
    chat = _dict(message["chat"], "chat")
    chat_id = _int(chat.get("id"), "chat.id")
    username = _optional_str(chat.get("username"), "chat.username")
    title = _optional_str(chat.get("title"), "chat.title")
    if "date" not in message:
        raise FormatError(f"{kind} {message_id} has no date")
    date = _timestamp(message["date"], "date")
    edit_date = None
    if message.get("edit_date") is not None:
        edit_date = _timestamp(message["edit_date"], "edit_date")

    if message.get("text") is not None:
        text_field, entities_field = "text", "entities"
    else:
        text_field, entities_field = "caption", "caption_entities"
    text = _optional_str(message.get(text_field), text_field) or ""
    entities = _entities(text, message.get(entities_field), entities_field)

    album_id = message.get("media_group_id")
    if album_id is not None and not isinstance(album_id, str | int):
        raise FormatError("media_group_id is not a string")
    reply = message.get("reply_to_message")
    reply_to = None
    if isinstance(reply, dict) and reply.get("message_id") is not None:
        reply_to = _int(reply["message_id"], "reply_to_message.message_id")

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
        media=_media(message),
        album_id=None if album_id is None else str(album_id),
        reply_to=reply_to,
        source=source,
        update_id=update_id,
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
            post = parse_update(item, source=source)
        except FormatError as exc:
            result.rejected.append(Rejected.of(source_name, index, str(exc), item))
            continue
        if post is not None:
            result.posts.append(post)
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
            raise FormatError(f"getUpdates response is not ok: {description}")
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
    """Updates stored one JSON object per line; a bad line is rejected under its line number."""
    items: list[tuple[int, object]] = []
    bad_lines: list[Rejected] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            bad_lines.append(Rejected.of(source_name, number, f"invalid JSON: {exc}", line))
    if not items and bad_lines:
        raise FormatError(f"not JSON lines: no line is valid JSON ({bad_lines[0].reason})")
    result = _parse_items(items, source_name, source, group_albums)
    result.read += len(bad_lines)
    result.rejected = sorted(
        [*result.rejected, *bad_lines], key=lambda rejected: int(rejected.index)
    )
    return result


def merge_albums(posts: list[Post]) -> list[Post]:
    """Merge album items (posts sharing ``album_id`` in one channel) into one post per album.

    The album post takes the smallest message id and earliest date, lists every item id in
    ``album_items`` and takes text and entities from the item with a caption (the first item
    otherwise). It sits where the album's first item was. An item seen again later (an edited
    caption) yields a new version of the whole album at that place, so edits are not lost.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for position, post in enumerate(posts):
        if post.album_id is not None:
            groups.setdefault((post.channel_key, post.album_id), []).append(position)
    if not groups:
        return list(posts)
    emit: dict[int, Post] = {}
    absorbed: set[int] = set()
    for positions in groups.values():
        items = [posts[position] for position in positions]
        ids = tuple(sorted({item.message_id for item in items}))
        first_date = min(item.date for item in items)
        state: dict[int, Post] = {}
        for item in items:
            state.setdefault(item.message_id, item)
        emit[positions[0]] = _album_post(list(state.values()), items[0], ids, first_date)
        seen: set[int] = set()
        for position, item in zip(positions, items, strict=True):
            absorbed.add(position)
            if item.message_id in seen:
                state[item.message_id] = item
                emit[position] = _album_post(list(state.values()), item, ids, first_date)
            seen.add(item.message_id)
    merged: list[Post] = []
    for position, post in enumerate(posts):
        if position in emit:
            merged.append(emit[position])
        elif position not in absorbed:
            merged.append(post)
    return merged


def _album_post(current: list[Post], latest: Post, ids: tuple[int, ...], date: datetime) -> Post:
    """One album version from the newest known version of each item."""
    captioned = [item for item in current if item.text]
    base = latest if latest.text else (captioned[0] if captioned else current[0])
    return base.with_changes(
        message_id=ids[0],
        album_items=ids,
        date=date,
        edited=any(item.edited for item in current),
        edit_date=max((item.edit_date for item in current if item.edit_date), default=None),
        update_id=latest.update_id,
    )
