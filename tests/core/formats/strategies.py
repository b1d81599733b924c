"""Hypothesis strategies for hostile input to every parser, shared by the fuzz tests and by
``scripts/fuzz_parsers.py`` (the long run), and the property every parser must keep.

The inputs are shaped like the real thing (the field names and markup each format uses) with
values drawn from everything JSON and HTML can carry: wrong types, huge and negative numbers,
lone surrogates, deep nesting, emoji, markup fragments; plus raw bytes and mutated sample files.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from service.core.formats.content import MAX_MESSAGE_ID, MAX_UNIX_TIME
from service.core.formats.result import FormatError, ParseResult, Rejected
from service.core.post import Post

SAMPLE = Path(__file__).resolve().parents[3] / "service" / "data" / "sample"

TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),  # surrogates included
    max_size=12,
) | st.sampled_from(["", "🇷🇺 #UNGA79", "@mfa_russia", "https://t.me/s/x", "\ud800", "\n\n"])
NUMBER = st.integers() | st.sampled_from([0, -1, 2**31, 2**53, 10**4000, 1727000000]) | st.floats()
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON = st.recursive(
    SCALAR,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TEXT | st.sampled_from(["type", "text", "id"]), children, max_size=4)
    ),
    max_leaves=12,
)

MESSAGE_KEYS = [
    "message_id", "chat", "date", "edit_date", "text", "entities", "caption", "caption_entities",
    "forward_origin", "forward_from_chat", "forward_from_message_id", "media_group_id",
    "reply_to_message", "author_signature", "photo", "video", "sticker", "poll", "checklist",
    "giveaway", "giveaway_winners", "pinned_message", "new_chat_title", "boost_added",
]  # fmt: skip
ENTITY = st.fixed_dictionaries(
    {"type": st.sampled_from(["bold", "url", "text_link", "custom_emoji", "hashtag"]) | JSON},
    optional={"offset": NUMBER, "length": NUMBER, "url": JSON, "custom_emoji_id": JSON},
)
GOOD_MESSAGE = {
    "message_id": 5,
    "date": 1727000000,
    "chat": {"id": -1001234567890, "username": "chan", "type": "channel"},
    "text": "hello #tag",
    "entities": [{"offset": 6, "length": 4, "type": "hashtag"}],
}


@st.composite
def bot_api_updates(draw: st.DrawFn) -> object:
    """A list of updates: well-formed ones with a few fields replaced by anything."""
    updates: list[object] = []
    for number in range(draw(st.integers(1, 4))):
        message: dict[str, Any] = json.loads(json.dumps(GOOD_MESSAGE))
        for key in draw(st.lists(st.sampled_from(MESSAGE_KEYS), max_size=4)):
            message[key] = draw(JSON | st.lists(ENTITY, max_size=3) | ENTITY)
        kind = draw(st.sampled_from(["channel_post", "edited_channel_post", "message"]))
        updates.append({"update_id": number, kind: message})
    if draw(st.booleans()):
        updates.append(draw(JSON))
    return updates


EXPORT_KEYS = [
    "id", "type", "date", "date_unixtime", "edited", "edited_unixtime", "text", "text_entities",
    "forwarded_from", "forwarded_from_id", "reply_to_message_id", "media_type", "from_id",
    "author", "photo", "file", "poll", "sticker_emoji", "todo_list", "giveaway_information",
    "giveaway_results", "from",
]  # fmt: skip
TEXT_PART = st.one_of(
    TEXT,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["bold", "link", "text_link", "custom_emoji", "plain"]) | JSON,
         "text": TEXT | JSON},
        optional={"href": JSON, "document_id": JSON, "user_id": JSON, "collapsed": JSON},
    ),
)  # fmt: skip


@st.composite
def exports(draw: st.DrawFn) -> object:
    """A single-chat or full-account export whose messages carry odd values."""
    messages: list[object] = []
    for number in range(draw(st.integers(1, 5))):
        message: dict[str, Any] = {
            "id": 100 + number,
            "type": "message",
            "date": "2024-09-25T17:10:05",
            "date_unixtime": "1727273405",
            "from_id": "channel1001",
            "text": "post",
        }
        for key in draw(st.lists(st.sampled_from(EXPORT_KEYS), max_size=4)):
            message[key] = draw(JSON | st.lists(TEXT_PART, max_size=4))
        messages.append(message)
    chat_type = draw(st.sampled_from(["public_channel", "private_supergroup"]) | JSON)
    chat: dict[str, Any] = {"name": draw(TEXT), "type": chat_type, "id": draw(NUMBER)}
    chat["messages"] = messages
    if draw(st.booleans()):
        return chat
    return {"chats": {"list": [chat, draw(JSON)]}, "left_chats": draw(st.none() | JSON)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


DATA_VIEW = st.one_of(
    TEXT,
    JSON.map(lambda value: _b64(json.dumps(value).encode())),
    st.integers(1, 3000).map(lambda depth: _b64(b"[" * depth + b"]" * depth)),
)
DATETIME = TEXT | st.sampled_from(
    ["2024-09-26T04:30:00+00:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]
)
INLINE = [
    "<b>", "</b>", "<i>", "</i>", "<pre>", "</pre>", "<code>", "<br/>", "<blockquote expandable>",
    '<i class="emoji"><b>🇷🇺</b></i>', '<tg-emoji emoji-id="5368324170671202286">', "</tg-emoji>",
    '<a href="?q=%23tag">#tag</a>', '<a href="https://t.me/c/123/45">x</a>', "<a href='",
    '<a onclick="x" href="https://a.b/?c=1&amp;amp;d=2">hidden</a>', "\n      ", "&#39;", "&",
]  # fmt: skip
BLOCK_PARTS = [
    '<div class="tgme_widget_message_poll"><div class="tgme_widget_message_poll_question">Q</div>',
    '<div class="tgme_widget_message_poll_option_text">opt</div>',
    '<div class="tgme_widget_message_grouped_wrap"><a href="https://t.me/c/1?single"></a>',
    '<a class="tgme_widget_message_photo_wrap" href="x"></a>',
    '<div class="tgme_widget_message_forwarded_from">Forwarded from&nbsp;'
    '<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/c/9/9">F</a></div>',
    '<span class="tgme_widget_message_from_author">Author</span>',
    '<a class="tgme_widget_message_reply" href="https://t.me/c/5"></a>',
    '<div class="media_not_supported_cont"><div class="message_media_not_supported"></div></div>',
    "</div>",
]  # fmt: skip


@st.composite
def preview_pages(draw: st.DrawFn) -> str:
    """A t.me/s page of message blocks assembled from real markup fragments and odd values."""
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        post = draw(st.sampled_from(["chan/1", "chan/99999999999999", "x", "chan/0"]) | TEXT)
        text = "".join(draw(st.lists(st.sampled_from(INLINE) | TEXT, max_size=12)))
        extra = "".join(draw(st.lists(st.sampled_from(BLOCK_PARTS), max_size=3)))
        views = draw(st.sampled_from(["1.2K", "9" * 400 + "B", "1e999K", ""]) | TEXT)
        classes = draw(st.sampled_from(["", " service_message"]))
        blocks.append(
            f'<div class="tgme_widget_message{classes}" data-post="{post}" '
            f'data-view="{draw(DATA_VIEW)}">{extra}'
            f'<div class="tgme_widget_message_text js-message_text">{text}</div>'
            f'<span class="tgme_widget_message_views">{views}</span>'
            f'<a class="tgme_widget_message_date" href="https://t.me/{post}">'
            f'<time datetime="{draw(DATETIME)}"></time></a></div>'
        )
    return f'<section class="tgme_channel_history">{"".join(blocks)}</section>'


def _sample_bytes() -> list[bytes]:
    return [path.read_bytes() for path in sorted(SAMPLE.glob("mfa_russia_*"))]


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """Bytes of a file: a sample file cut, with bytes flipped or inserted, or anything at all."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    data = bytearray(draw(st.sampled_from(_sample_bytes())))
    cut = draw(st.integers(0, len(data)))
    data = data[:cut] if draw(st.booleans()) else data
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


def check_post(post: Post) -> None:
    """What every parsed post must be, whatever the input was: storable and in range."""
    encoded = json.dumps(post.to_dict(), ensure_ascii=False).encode("utf-8")
    assert Post.from_dict(json.loads(encoded)) == post
    assert 0 < post.message_id <= MAX_MESSAGE_ID
    earliest, latest = datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(MAX_UNIX_TIME, UTC)
    assert earliest <= post.date <= latest
    assert all(0 < item <= MAX_MESSAGE_ID for item in post.album_items)
    assert all(post.text[e.offset : e.end] == e.text for e in post.entities)
    assert all(0 <= part.offset <= part.end <= len(post.text) for part in post.parts)


def check_rejected(rejected: Rejected) -> None:
    json.dumps(rejected.to_dict(), ensure_ascii=False).encode("utf-8")
    assert rejected.reason


def check_result(result: ParseResult) -> None:
    for post in result.posts:
        check_post(post)
    for rejected in result.rejected:
        check_rejected(rejected)


__all__ = [
    "FormatError",
    "bot_api_updates",
    "check_post",
    "check_rejected",
    "check_result",
    "exports",
    "files",
    "preview_pages",
]
