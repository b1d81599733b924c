"""Telethon's messages and updates as the source's own data: posts, skipped ids and deletions.

A channel message becomes the same normalized ``Post`` the other sources make: text with its
entities (MTProto offsets are UTF-16 code units, as in the Bot API, converted to string indices),
media kind, album id (``grouped_id``; the pool makes one post per album), forward origin (channel
id, username and message id, from the peers the update or history carried), reply-to within the
channel, author signature (``post_author``), edit date and views. Service messages and messages
that are not channel posts come out without a post (skipped, yet their ids still count for the
watermark); a message that cannot be mapped comes out ``rejected`` with the reason, never raised.

Only raw TL fields are read, never Telethon's client-bound helpers, so a message read back from
Telethon's binary serialization maps exactly as one a live handler receives.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import types

from service.core.formats.content import Content
from service.core.formats.result import Rejected
from service.core.post import CHANNEL_ID_BASE, Entity, ForwardOrigin, Post
from service.sources.mtproto.client import ChannelEvent, ChannelMessage, ChannelRef, Deletion

SOURCE = "mtproto"

# MTProto entity constructors and the Bot API type names the other sources use.
ENTITY_TYPES: dict[type, str] = {
    types.MessageEntityMention: "mention",
    types.MessageEntityHashtag: "hashtag",
    types.MessageEntityCashtag: "cashtag",
    types.MessageEntityBotCommand: "bot_command",
    types.MessageEntityUrl: "url",
    types.MessageEntityEmail: "email",
    types.MessageEntityPhone: "phone_number",
    types.MessageEntityBankCard: "bank_card_number",
    types.MessageEntityBold: "bold",
    types.MessageEntityItalic: "italic",
    types.MessageEntityUnderline: "underline",
    types.MessageEntityStrike: "strikethrough",
    types.MessageEntitySpoiler: "spoiler",
    types.MessageEntityCode: "code",
    types.MessageEntityPre: "pre",
    types.MessageEntityTextUrl: "text_link",
    types.MessageEntityMentionName: "text_mention",
    types.InputMessageEntityMentionName: "text_mention",
    types.MessageEntityCustomEmoji: "custom_emoji",
    types.MessageEntityBlockquote: "blockquote",
    types.MessageEntityFormattedDate: "date_time",
}

# Media constructors (other than documents, which are told apart by their attributes) and the
# kind a post records, named as the Bot API names the same media.
MEDIA_KINDS: dict[type, str] = {
    types.MessageMediaPhoto: "photo",
    types.MessageMediaPoll: "poll",
    types.MessageMediaGeo: "location",
    types.MessageMediaGeoLive: "location",
    types.MessageMediaVenue: "venue",
    types.MessageMediaContact: "contact",
    types.MessageMediaDice: "dice",
    types.MessageMediaGame: "game",
    types.MessageMediaStory: "story",
    types.MessageMediaPaidMedia: "paid_media",
    types.MessageMediaGiveaway: "giveaway",
    types.MessageMediaGiveawayResults: "giveaway_winners",
    types.MessageMediaInvoice: "invoice",
    types.MessageMediaToDo: "checklist",
    types.MessageMediaUnsupported: "unsupported",
}


class MappingError(ValueError):
    """One message cannot become a post (the reason says why)."""


def bot_api_id(bare_id: int) -> int:
    """A channel's id in the Bot API form (``-100<bare id>``), as ``Post.channel_id`` holds it."""
    return -(CHANNEL_ID_BASE + bare_id)


@dataclass(frozen=True)
class Peers:
    """The channels and users an update or a history page came with, by bare id."""

    channels: Mapping[int, ChannelRef] = field(default_factory=dict)
    users: Mapping[int, tuple[str | None, str | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, chats: Iterable[Any] = (), users: Iterable[Any] = ()) -> Peers:
        found = {}
        for chat in chats:
            ref = channel_ref(chat)
            if ref is not None:
                found[ref.channel_id] = ref
        people = {}
        for user in users:
            if isinstance(user, types.User):
                name = " ".join(p for p in (user.first_name, user.last_name) if p) or None
                people[user.id] = (name, user.username)
        return cls(found, people)


def channel_ref(chat: Any) -> ChannelRef | None:
    """A ``Channel`` (or ``ChannelForbidden``) as a ChannelRef; None for other chats."""
    if isinstance(chat, types.Channel):
        username = chat.username
        if username is None and chat.usernames:
            active = [item.username for item in chat.usernames if item.active]
            username = active[0] if active else None
        return ChannelRef(chat.id, chat.access_hash, username, chat.title, joined=not chat.left)
    if isinstance(chat, types.ChannelForbidden):
        return ChannelRef(chat.id, chat.access_hash, None, chat.title, joined=False)
    return None


# Characters outside the BMP: two UTF-16 code units each (flags, most emoji).
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class Utf16Offsets:
    """UTF-16 offsets of ``text`` as string indices, without a table of every unit: only the
    characters that take two units are listed (a channel post has a few emoji in ~1 KB of text,
    and a per-character table costs ~0.15 ms a post). A unit in the middle of a surrogate pair
    is the index of the character it belongs to, as ``post.utf16_to_index`` says."""

    def __init__(self, text: str) -> None:
        # The k-th astral character, at index i, starts at UTF-16 offset i + k.
        self.starts = [m.start() + k for k, m in enumerate(_ASTRAL.finditer(text))]
        self.units = len(text) + len(self.starts)

    def index(self, offset: int) -> int:
        return offset - bisect.bisect_left(self.starts, offset)


def _entities(text: str, raw: Iterable[Any] | None) -> tuple[Entity, ...]:
    if not raw:
        return ()
    offsets = Utf16Offsets(text)
    entities: list[Entity] = []
    for item in raw:
        type_ = ENTITY_TYPES.get(type(item))
        if type_ is None:  # MessageEntityUnknown and kinds newer than this mapping
            continue
        url: str | None = None
        if isinstance(item, types.MessageEntityTextUrl):
            url = item.url
        elif isinstance(item, types.MessageEntityMentionName):
            url = f"tg://user?id={item.user_id}"
        elif isinstance(item, types.MessageEntityBlockquote) and item.collapsed:
            type_ = "expandable_blockquote"
        emoji_id = None
        if isinstance(item, types.MessageEntityCustomEmoji):
            emoji_id = str(item.document_id)
        if item.offset < 0 or item.length < 0 or item.offset + item.length > offsets.units:
            raise MappingError(
                f"entity {type_} at {item.offset}+{item.length} lies outside the text"
            )
        start, end = offsets.index(item.offset), offsets.index(item.offset + item.length)
        entities.append(Entity(type_, start, end - start, text[start:end], url, emoji_id))
    return tuple(entities)


def _document_kind(document: Any) -> str:
    attributes = getattr(document, "attributes", None) or ()
    kinds = {type(attribute): attribute for attribute in attributes}
    if types.DocumentAttributeSticker in kinds:
        return "sticker"
    if types.DocumentAttributeAnimated in kinds:
        return "animation"
    video = kinds.get(types.DocumentAttributeVideo)
    if video is not None:
        return "video_note" if video.round_message else "video"
    audio = kinds.get(types.DocumentAttributeAudio)
    if audio is not None:
        return "voice" if audio.voice else "audio"
    return "document"


def media_kind(media: Any) -> str | None:
    """The media kind of a message (None for text, a link preview, or no media)."""
    if media is None or isinstance(media, types.MessageMediaEmpty | types.MessageMediaWebPage):
        return None
    if isinstance(media, types.MessageMediaDocument):
        return _document_kind(media.document)
    kind = MEDIA_KINDS.get(type(media))
    if kind is not None:
        return kind
    return type(media).__name__.removeprefix("MessageMedia").lower() or "unsupported"


def _rich(value: Any) -> tuple[str, tuple[Entity, ...]]:
    """A ``TextWithEntities`` (a poll's question, a checklist item) or, in older layers, a str."""
    if isinstance(value, types.TextWithEntities):
        return value.text, _entities(value.text, value.entities)
    return (value or "", ()) if isinstance(value, str) else ("", ())


def _content(message: Any, media: str | None) -> Content:
    """What a person reads in the message, in the pieces every format marks (see ``Content``):
    the text (a caption when there is media), then what a poll, a sticker, a giveaway or a
    checklist shows in words."""
    found = Content()
    text = message.message or ""
    found.add("text" if media is None else "caption", text, _entities(text, message.entities))
    raw = message.media
    if isinstance(raw, types.MessageMediaPoll):
        found.add("question", *_rich(raw.poll.question))
        for answer in raw.poll.answers:
            found.add("option", *_rich(answer.text))
    elif isinstance(raw, types.MessageMediaGiveaway | types.MessageMediaGiveawayResults):
        found.add("prize", raw.prize_description or "")
    elif isinstance(raw, types.MessageMediaToDo):
        found.add("title", *_rich(raw.todo.title))
        for item in raw.todo.list:
            found.add("item", *_rich(item.title))
    elif media == "sticker":
        for attribute in getattr(raw.document, "attributes", None) or ():
            if isinstance(attribute, types.DocumentAttributeSticker):
                found.add("emoji", attribute.alt)
    return found


def _forward(header: Any, peers: Peers) -> ForwardOrigin | None:
    if header is None:
        return None
    origin = header.from_id
    if isinstance(origin, types.PeerChannel):
        ref = peers.channels.get(origin.channel_id)
        return ForwardOrigin(
            title=ref.title if ref else None,
            username=ref.username if ref else None,
            channel_id=bot_api_id(origin.channel_id),
            message_id=header.channel_post,
        )
    if isinstance(origin, types.PeerUser):
        name, username = peers.users.get(origin.user_id, (header.from_name, None))
        return ForwardOrigin(title=name, username=username)
    return ForwardOrigin(title=header.from_name)


def _reply_to(header: Any) -> int | None:
    """The replied-to message when it is in the same channel (as the other sources keep it)."""
    if isinstance(header, types.MessageReplyHeader) and header.reply_to_peer_id is None:
        value = header.reply_to_msg_id
        return int(value) if value is not None else None
    return None


def _post(message: Any, channel_id: int, peers: Peers, edited: bool) -> Post | None:
    """The post of a channel message; None when there is nothing in it to read or see (a
    service message by its shape, as every format skips them)."""
    ref = peers.channels.get(channel_id)
    media = media_kind(message.media)
    found = _content(message, media)
    if not found and media is None:
        return None
    text, entities, parts = found.build()
    # A hidden edit (reactions, buttons) is shown as not edited, so its date is not an edit date.
    edit_date = None if message.edit_hide else message.edit_date
    return Post(
        channel=ref.username if ref and ref.username else f"c/{channel_id}",
        message_id=message.id,
        date=message.date,
        text=text,
        channel_id=bot_api_id(channel_id),
        channel_title=ref.title if ref else None,
        edit_date=edit_date,
        edited=edited or edit_date is not None,
        entities=entities,
        forward=_forward(message.fwd_from, peers),
        media=media,
        album_id=None if message.grouped_id is None else str(message.grouped_id),
        reply_to=_reply_to(message.reply_to),
        views=message.views,
        source=SOURCE,
        author=message.post_author,
        parts=parts,
    )


def map_message(message: Any, peers: Peers, *, edited: bool = False) -> ChannelMessage | None:
    """One channel message; None when it is not in a channel at all."""
    peer = getattr(message, "peer_id", None)
    if not isinstance(peer, types.PeerChannel):
        return None
    channel_id = peer.channel_id
    message_id = int(message.id)
    if not isinstance(message, types.Message) or not message.post:
        # A service message (pin, title change...), an empty one, or a group message.
        return ChannelMessage(channel_id, message_id, edited=edited)
    try:
        post = _post(message, channel_id, peers, edited)
    except (MappingError, ValueError, TypeError, AttributeError) as exc:
        ref = peers.channels.get(channel_id)
        where = f"{SOURCE}:{ref.key if ref else f'c/{channel_id}'}"
        raw = message.to_dict()
        rejected = Rejected.of(where, message_id, f"unmappable message: {exc}", raw)
        return ChannelMessage(channel_id, message_id, rejected=rejected)
    return ChannelMessage(channel_id, message_id, post=post, edited=edited)


def events_from_update(update: Any, peers: Peers) -> list[ChannelEvent]:
    """The channel events of one update: new and edited channel messages, deletions."""
    if isinstance(update, types.UpdateNewChannelMessage):
        mapped = map_message(update.message, peers)
        return [] if mapped is None else [mapped]
    if isinstance(update, types.UpdateEditChannelMessage):
        mapped = map_message(update.message, peers, edited=True)
        return [] if mapped is None else [mapped]
    if isinstance(update, types.UpdateDeleteChannelMessages):
        return [Deletion(update.channel_id, tuple(int(i) for i in update.messages))]
    return []


def events_from_updates(container: Any) -> list[ChannelEvent]:
    """Every channel event of an ``Updates`` container (or a single update)."""
    if isinstance(container, types.Updates | types.UpdatesCombined):
        peers = Peers.of(container.chats, container.users)
        return [event for item in container.updates for event in events_from_update(item, peers)]
    return events_from_update(container, Peers())


def messages_from_history(result: Any) -> list[ChannelMessage]:
    """The channel messages of a history answer (``messages.ChannelMessages`` and kin), in the
    order received (newest first)."""
    peers = Peers.of(getattr(result, "chats", ()), getattr(result, "users", ()))
    mapped = (map_message(message, peers) for message in getattr(result, "messages", ()))
    return [item for item in mapped if item is not None]
