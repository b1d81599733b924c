"""Real Telethon TL objects for the mapping tests, and the round trip through Telethon's own binary
serializer (``bytes(obj)``) and reader (``BinaryReader.tgread_object``).

``from_bot_api`` builds the MTProto update a user account receives for a Bot API update of the
shared sample: the same message id, date, text, UTF-16 entity offsets (MTProto and the Bot API
count alike, so they are copied, not converted), media, album (``media_group_id`` is the decimal
``grouped_id``), forward header and reply header. The channels involved go into the container's
``chats``, as Telegram sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telethon.extensions import BinaryReader
from telethon.tl import types

from service.core.post import bare_channel_id

BOT_ENTITIES: dict[str, type] = {
    "mention": types.MessageEntityMention,
    "hashtag": types.MessageEntityHashtag,
    "cashtag": types.MessageEntityCashtag,
    "bot_command": types.MessageEntityBotCommand,
    "url": types.MessageEntityUrl,
    "email": types.MessageEntityEmail,
    "phone_number": types.MessageEntityPhone,
    "bank_card_number": types.MessageEntityBankCard,
    "bold": types.MessageEntityBold,
    "italic": types.MessageEntityItalic,
    "underline": types.MessageEntityUnderline,
    "strikethrough": types.MessageEntityStrike,
    "spoiler": types.MessageEntitySpoiler,
    "code": types.MessageEntityCode,
}


def roundtrip(obj: Any) -> Any:
    """``obj`` serialized by Telethon and read back: what a live handler gets."""
    return BinaryReader(bytes(obj)).tgread_object()


def when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def channel(bare_id: int, title: str, username: str | None, *, left: bool = False) -> Any:
    return types.Channel(
        id=bare_id, title=title, photo=types.ChatPhotoEmpty(), date=when(1600000000),
        broadcast=True, access_hash=bare_id * 7919, username=username, left=left,
    )  # fmt: skip


def entity(raw: dict[str, Any]) -> Any:
    kind, offset, length = raw["type"], raw["offset"], raw["length"]
    if kind == "text_link":
        return types.MessageEntityTextUrl(offset, length, raw["url"])
    if kind == "text_mention":
        return types.MessageEntityMentionName(offset, length, raw["user"]["id"])
    if kind == "pre":
        return types.MessageEntityPre(offset, length, raw.get("language", ""))
    if kind == "custom_emoji":
        return types.MessageEntityCustomEmoji(offset, length, int(raw["custom_emoji_id"]))
    if kind in ("blockquote", "expandable_blockquote"):
        return types.MessageEntityBlockquote(offset, length, collapsed=kind != "blockquote")
    return BOT_ENTITIES[kind](offset, length)


def photo(seed: int, date: datetime) -> Any:
    size = types.PhotoSize(type="x", w=800, h=600, size=50_000)
    return types.MessageMediaPhoto(
        photo=types.Photo(seed, seed * 31, b"ref", date, [size], dc_id=2)
    )


def document(seed: int, date: datetime, *attributes: Any, mime: str = "video/mp4") -> Any:
    return types.MessageMediaDocument(
        document=types.Document(seed, seed * 31, b"ref", date, mime, 1_000_000, 2, list(attributes))
    )


def video(seed: int, date: datetime) -> Any:
    return document(seed, date, types.DocumentAttributeVideo(duration=42.0, w=1280, h=720))


def message(bare_id: int, message_id: int, date: datetime, text: str = "", **fields: Any) -> Any:
    """A channel post (``post=True``), as Telegram sends channel messages."""
    return types.Message(
        id=message_id, peer_id=types.PeerChannel(bare_id), date=date, message=text, post=True,
        **fields,
    )  # fmt: skip


def rich(text: str, raw_entities: list[dict[str, Any]] | None) -> Any:
    return types.TextWithEntities(text, [entity(item) for item in raw_entities or []])


def poll(raw: dict[str, Any]) -> Any:
    answers = [
        types.PollAnswer(rich(option["text"], option.get("text_entities")), str(n).encode())
        for n, option in enumerate(raw["options"])
    ]
    question = rich(raw["question"], raw.get("question_entities"))
    return types.MessageMediaPoll(types.Poll(int(raw["id"]), question, answers, hash=0),
                                  types.PollResults())  # fmt: skip


def from_bot_api_message(raw: dict[str, Any]) -> Any:
    date = when(raw["date"])
    bare = bare_channel_id(raw["chat"]["id"])
    if "pinned_message" in raw:  # a service message: pinning the poll
        return types.MessageService(
            id=raw["message_id"], peer_id=types.PeerChannel(bare), date=date, post=True,
            action=types.MessageActionPinMessage(),
            reply_to=types.MessageReplyHeader(reply_to_msg_id=raw["pinned_message"]["message_id"]),
        )  # fmt: skip
    text_field = "text" if "text" in raw else "caption"
    entities_field = "entities" if text_field == "text" else "caption_entities"
    fields: dict[str, Any] = {}
    if raw.get(entities_field):
        fields["entities"] = [entity(item) for item in raw[entities_field]]
    if "photo" in raw:
        fields["media"] = photo(raw["message_id"], date)
    elif "video" in raw:
        fields["media"] = video(raw["message_id"], date)
    elif "poll" in raw:
        fields["media"] = poll(raw["poll"])
    if "media_group_id" in raw:
        fields["grouped_id"] = int(raw["media_group_id"])
    if raw.get("edit_date"):
        fields["edit_date"] = when(raw["edit_date"])
    if raw.get("author_signature"):
        fields["post_author"] = raw["author_signature"]
    origin = raw.get("forward_origin")
    if origin and origin["type"] == "channel":
        fields["fwd_from"] = types.MessageFwdHeader(
            date=when(origin["date"]),
            from_id=types.PeerChannel(bare_channel_id(origin["chat"]["id"])),
            channel_post=origin["message_id"],
        )
    if raw.get("reply_to_message"):
        fields["reply_to"] = types.MessageReplyHeader(
            reply_to_msg_id=raw["reply_to_message"]["message_id"]
        )
    return message(bare, raw["message_id"], date, raw.get(text_field, ""), **fields)


def _chats(raw: dict[str, Any]) -> list[Any]:
    chats = {raw["chat"]["id"]: raw["chat"]}
    origin = raw.get("forward_origin")
    if origin and origin["type"] == "channel":
        chats[origin["chat"]["id"]] = origin["chat"]
    return [
        channel(bare_channel_id(chat["id"]), chat["title"], chat.get("username"))
        for chat in chats.values()
    ]


def from_bot_api(update: dict[str, Any]) -> Any:
    """The ``Updates`` container an account receives for one Bot API channel update."""
    edited = "edited_channel_post" in update
    raw = update["edited_channel_post" if edited else "channel_post"]
    tl_message = from_bot_api_message(raw)
    kind = types.UpdateEditChannelMessage if edited else types.UpdateNewChannelMessage
    inner = kind(message=tl_message, pts=update["update_id"], pts_count=1)
    return types.Updates(
        updates=[inner], users=[], chats=_chats(raw), date=when(raw["date"]), seq=0
    )
