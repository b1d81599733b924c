"""Hostile input: whatever one item holds, it is set aside with its reason and nothing else is lost.

Each case was an exception that escaped a parser (TypeError, OverflowError, RecursionError), a
value stored as nonsense (a 4,001-digit id), or a whole page or file lost for one bad part.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from service.core.formats.botapi import parse_update_lines, parse_updates
from service.core.formats.detect import parse_bytes
from service.core.formats.export import parse_export
from service.core.formats.preview import parse_preview
from service.core.formats.result import FormatError, Rejected
from service.core.post import Post

HUGE = "9" * 4001


def export_message(message_id: int, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "date_unixtime": "1727273405",
        "from_id": "channel777",
        "text": f"post {message_id}",
    }
    message.update(fields)
    return message


def channel(*messages: object) -> dict[str, Any]:
    return {"name": "Chan", "type": "public_channel", "id": 777, "messages": list(messages)}


@pytest.mark.parametrize(
    "fields",
    [
        {"type": ["message"]},
        {"type": {"message": 1}},
        {"text": [{"type": ["bold"], "text": "x"}]},
        {"text": [{"type": "bold", "text": ["x"]}]},
        {"date_unixtime": ["1727273405"]},
        {"date_unixtime": {"s": 1}},
        {"edited_unixtime": [1]},
        {"poll": "a poll", "text": ""},
        {"poll": {"question": 5, "answers": []}, "text": ""},
        {"poll": {"question": "q", "answers": {"a": 1}}, "text": ""},
        {"todo_list": {"title": "t", "items": [["x"]]}, "text": ""},
        {"giveaway_information": ["x"], "text": ""},
        {"reply_to_message_id": [1]},
        {"id": int(HUGE)},
        {"id": -5},
        {"date_unixtime": HUGE},
        {"date_unixtime": str(2**40)},
        {"date": "9999-12-31T23:59:59", "date_unixtime": None},
    ],
)
def test_one_bad_export_item_is_set_aside_with_its_reason(fields: dict[str, Any]) -> None:
    bad = export_message(2)
    bad.update(fields)
    bad = {key: value for key, value in bad.items() if value is not None}
    result = parse_export(channel(export_message(1), bad, export_message(3)))
    assert [post.message_id for post in result.posts] == [1, 3]
    (rejected,) = result.rejected
    assert rejected.index == 1 and rejected.reason
    assert len(rejected.raw) <= 2000


@pytest.mark.parametrize("value", [["public_channel"], {"a": 1}, 5])
def test_an_export_chat_of_odd_type_is_one_clear_error(value: object) -> None:
    with pytest.raises(FormatError, match="not of a channel"):
        parse_export({"name": "x", "type": value, "id": 1, "messages": []})
    full = parse_export({"chats": {"list": [{"type": value, "id": 1, "messages": [1, 2]}]}})
    assert (full.posts, full.skipped) == ([], {"not_channel_post": 2})


def _update(message_id: object, **fields: Any) -> dict[str, Any]:
    message = {"message_id": message_id, "date": 1727000000, "text": "post",
               "chat": {"id": -1001234567890, "username": "chan", "type": "channel"}}  # fmt: skip
    message.update(fields)
    return {"update_id": 1, "channel_post": message}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (json.dumps(_update(int(HUGE))), "out of range"),
        (json.dumps(_update(0)), "out of range"),
        (json.dumps(_update(2**31)), "out of range"),
        (json.dumps(_update(1, date=2**40)), "Unix time"),
        (json.dumps(_update(1, date=-1)), "Unix time"),
        (json.dumps(_update(1, chat={"id": 2**60, "type": "channel"})), "chat.id"),
        (json.dumps({**_update(1), "update_id": -4}), "update_id"),
        (json.dumps(_update(1, reply_to_message={"message_id": int(HUGE[:30])})), "range"),
    ],
)
def test_ids_and_dates_of_updates_are_range_checked(raw: str, reason: str) -> None:
    lines = "\n".join([json.dumps(_update(7)), raw, json.dumps(_update(8))])
    result = parse_update_lines(lines, source_name="in.jsonl")
    assert [post.message_id for post in result.posts] == [7, 8]
    (rejected,) = result.rejected
    assert (rejected.index, reason in rejected.reason) == (2, True), rejected.reason
    for post in result.posts:
        assert json.loads(json.dumps(post.to_dict()))["message_id"] < 2**31


def page(*blocks: str) -> str:
    return f'<section class="tgme_channel_history">{"".join(blocks)}</section>'


def block(post: str, *, when: str = "2024-09-26T04:30:00+00:00", view: str = "",
          views: str = "1.2K", text: str = "text") -> str:  # fmt: skip
    return (
        f'<div class="tgme_widget_message" data-post="{post}" data-view="{view}">'
        f'<div class="tgme_widget_message_text js-message_text">{text}</div>'
        f'<span class="tgme_widget_message_views">{views}</span>'
        f'<a class="tgme_widget_message_date" href="https://t.me/{post}">'
        f'<time datetime="{when}"></time></a></div>'
    )


@pytest.mark.parametrize(
    "when",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59+00:00",
     "2200-01-01T00:00:00+00:00", "2024-13-01T00:00:00"],
)  # fmt: skip
def test_preview_dates_out_of_range_set_the_block_aside(when: str) -> None:
    parsed = parse_preview(page(block("chan/1"), block("chan/2", when=when), block("chan/3")))
    assert [post.message_id for post in parsed.posts] == [1, 3]
    assert [rejected.index for rejected in parsed.rejected] == [1]


def test_deeply_nested_data_view_costs_nothing_but_its_channel_id() -> None:
    deep = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    nested = base64.b64encode(json.dumps({"c": [[[[[-5]]]]]}).encode()).decode()
    parsed = parse_preview(page(block("chan/1", view=deep), block("chan/2", view=nested)))
    assert [(post.message_id, post.channel_id) for post in parsed.posts] == [(1, None), (2, None)]
    assert parsed.rejected == []


def test_absurd_preview_ids_and_view_counts() -> None:
    parsed = parse_preview(
        page(
            block(f"chan/{HUGE}"),
            block("chan/2", views="9" * 400 + "B"),
            block("chan/3", views="1e999K"),
            block("chan/4", views="99999999999999B"),
        )
    )
    assert [(post.message_id, post.views) for post in parsed.posts] == [
        (2, None), (3, None), (4, None),
    ]  # fmt: skip
    assert [rejected.index for rejected in parsed.rejected] == [0]


def test_a_preview_full_of_links_parses_in_one_pass() -> None:
    # 352 KiB of message text made of links once took 12.7 s (the text was joined per link).
    links = "".join(f'<a href="https://example.org/{n}">link {n}</a> ' for n in range(8000))
    parsed = parse_preview(page(block("chan/1", text=links)))
    (post,) = parsed.posts
    assert len(post.entities) == 8000
    assert post.entities[-1].text == "link 7999"
    assert all(post.text[e.offset : e.end] == e.text for e in post.entities[::97])


def test_lone_surrogates_in_any_field_are_set_aside_and_printable() -> None:
    raw = (
        '[{"update_id": 1, "channel_post": {"message_id": 1, "date": 1, "text": "ok",'
        ' "author_signature": "\\ud800", "chat": {"id": -1001, "type": "channel"}}},'
        ' {"update_id": 2, "channel_post": {"message_id": 2, "date": 1, "text": "fine",'
        ' "chat": {"id": -1001, "type": "channel", "title": "T\\udfff"}}}]'
    )
    result = parse_updates(json.loads(raw), source_name="src\udcff.json")
    assert result.posts == []
    assert len(result.rejected) == 2
    for rejected in result.rejected:
        json.dumps(rejected.to_dict(), ensure_ascii=False).encode("utf-8")  # storable
        assert "\\ud800" in rejected.raw or "\\udfff" in rejected.raw
        assert rejected.source == "src\\udcff.json"


def test_invalid_utf8_costs_one_line_of_json_lines() -> None:
    good = [json.dumps(_update(n), ensure_ascii=False).encode() for n in range(1, 1001)]
    good[499] = good[499].replace(b'"post"', b'"p\xff\xfest"')
    result = parse_bytes(b"\n".join(good), source_name="dump.jsonl")
    assert len(result.posts) == 999
    (rejected,) = result.rejected
    assert rejected.index == 500 and "UTF-8" in rejected.reason
    assert "\\udcff" in rejected.raw
    rejected.raw.encode("utf-8")


def test_invalid_utf8_in_a_json_document_costs_only_its_item() -> None:
    body = json.dumps(channel(export_message(1), export_message(2), export_message(3)))
    data = body.replace("post 2", "po\udcffst 2").encode("utf-8", "surrogateescape")
    result = parse_bytes(data, source_name="export.json")
    assert [post.message_id for post in result.posts] == [1, 3]
    assert len(result.rejected) == 1


def test_undecodable_garbage_says_it_is_not_utf8() -> None:
    with pytest.raises(FormatError, match="not UTF-8"):
        parse_bytes(b"\xff\xfe\x00\x01garbage", source_name="x")


def test_rejections_keep_their_own_text_printable() -> None:
    rejected = Rejected.of("a\udc80b", "i\ud800", "why \udcff", {"text": "x\ud800y"})
    for value in (rejected.source, str(rejected.index), rejected.reason, rejected.raw):
        value.encode("utf-8")
    assert Rejected.from_dict(json.loads(json.dumps(rejected.to_dict()))) == rejected


def test_posts_stored_before_parts_and_authors_still_load() -> None:
    old = {
        "channel": "mfa_russia", "channel_id": -1001, "channel_title": "MFA", "message_id": 5,
        "date": "2024-09-25T10:00:00+00:00", "edit_date": None, "edited": False,
        "text": "hello #tag", "entities": [{"type": "hashtag", "offset": 6, "length": 4,
                                            "text": "#tag"}],
        "forward": None, "media": None, "album_id": None, "album_items": [], "reply_to": None,
        "views": None, "source": "botapi", "update_id": 3, "link": "https://t.me/mfa_russia/5",
        "content_hash": "0123456789abcdef",
    }  # fmt: skip
    post = Post.from_dict(old)
    assert (post.author, post.parts, post.entities[0].custom_emoji_id) == (None, (), None)
    assert post.part_texts("text") == ["hello #tag"]
    again = Post.from_dict(json.loads(json.dumps(post.to_dict())))
    assert again == post


def test_an_undecodable_byte_in_an_entity_type_costs_only_its_message() -> None:
    # Found by scripts/fuzz_parsers.py: a flipped byte inside an export's entity type name.
    body = json.dumps(
        channel(export_message(1), export_message(2, text=[{"type": "bold", "text": "x"}]))
    )
    data = body.replace('"bold"', '"bol\udca3"').encode("utf-8", "surrogateescape")
    result = parse_bytes(data, source_name="export.json")
    assert [post.message_id for post in result.posts] == [1]
    assert len(result.rejected) == 1
