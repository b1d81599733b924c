"""Desktop exports → posts: text arrays, entity names, dates, albums by heuristic, rejects."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.core.formats.export import export_text, parse_export
from service.core.formats.result import FormatError
from service.core.post import ForwardOrigin, Post

FILE_NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


@pytest.fixture
def export(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / "mfa_russia_export.json").read_text())
    return data


@pytest.fixture
def posts(export: dict[str, Any]) -> dict[int, Post]:
    return {post.message_id: post for post in parse_export(export, channel="mfa_russia").posts}


def message(message_id: int, text: object = "", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "date": "2024-09-25T17:10:05",
        "date_unixtime": "1727273405",
        "from": "Chan",
        "from_id": "channel777",
        "text": text,
    }
    data.update(fields)
    return data


def chat(*messages: dict[str, Any], kind: str = "public_channel", id_: int = 777) -> dict[str, Any]:
    return {"name": "Chan", "type": kind, "id": id_, "messages": list(messages)}


def ids(data: dict[str, Any], **kwargs: Any) -> list[tuple[int, tuple[int, ...]]]:
    return [(p.message_id, p.album_items) for p in parse_export(data, **kwargs).posts]


def test_fixture_parses_without_rejects(export: dict[str, Any]) -> None:
    result = parse_export(export, source_name="export.json")
    assert result.rejected == []
    assert result.read == len(export["messages"])
    services = sum(message["type"] == "service" for message in export["messages"])
    assert services >= 1
    assert result.skipped == {"service": services}
    # 1012 and 1013 join 1011; 1023 and 1025 join 1024's caption (on the album's second item).
    assert len(result.posts) == len(export["messages"]) - services - 4


def test_fixture_album_captioned_on_its_second_item(export: dict[str, Any]) -> None:
    caption = next(m for m in export["messages"] if m["id"] == 1024)["text_entities"]
    posts = parse_export(export).posts
    (album,) = [post for post in posts if 1024 in post.album_items]
    assert (album.message_id, album.album_items) == (1023, (1023, 1024, 1025))
    assert album.text == "".join(part["text"] for part in caption)
    assert [(e.type, e.text) for e in album.entities] == [("hashtag", "#UNGA79")]


def test_old_export_dates_are_local_time_read_in_the_given_zone(fixtures_dir: Path) -> None:
    old = json.loads((fixtures_dir / "mfa_russia_export_2021.json").read_text())
    modern = {p.message_id: p for p in parse_export(
        json.loads((fixtures_dir / "mfa_russia_export.json").read_text())).posts}  # fmt: skip
    assert not any("date_unixtime" in message for message in old["messages"])
    moscow = parse_export(old, tz=ZoneInfo("Europe/Moscow"))
    assert moscow.rejected == []
    assert moscow.posts
    for post in moscow.posts:
        assert (post.date, post.edit_date, post.text) == (
            modern[post.message_id].date, modern[post.message_id].edit_date,
            modern[post.message_id].text)  # fmt: skip
    in_utc = {post.message_id: post.date for post in parse_export(old).posts}
    assert all(in_utc[p.message_id] - p.date == timedelta(hours=3) for p in moscow.posts)


def test_channel_named_by_bare_id_unless_given(export: dict[str, Any]) -> None:
    bare = export["id"]
    default = parse_export(export).posts[0]
    assert default.channel == f"c/{bare}"
    assert default.channel_id == -(10**12 + bare)
    assert default.channel_title == export["name"]
    assert default.source == "export"
    named = parse_export(export, channel="mfa_russia").posts[0]
    assert named.channel == "mfa_russia"
    assert named.channel_id == default.channel_id
    assert named.link == f"https://t.me/mfa_russia/{named.message_id}"


def test_dates_come_from_unixtime_strings(export: dict[str, Any], posts: dict[int, Post]) -> None:
    for raw in export["messages"]:
        if raw["id"] in posts:
            post = posts[raw["id"]]
            assert post.date == datetime.fromtimestamp(int(raw["date_unixtime"]), UTC)
            if "edited_unixtime" in raw:
                assert post.edited
                assert post.edit_date == datetime.fromtimestamp(int(raw["edited_unixtime"]), UTC)
            else:
                assert not post.edited
                assert post.edit_date is None


@pytest.mark.parametrize("message_id", [1003, 1008])
def test_edited_messages(posts: dict[int, Post], message_id: int) -> None:
    assert posts[message_id].edited
    assert posts[message_id].edit_date is not None


def test_forward_has_title_only(posts: dict[int, Post]) -> None:
    assert posts[1002].forward == ForwardOrigin(title="Russian Mission Geneva")
    assert posts[1000].forward is None


def test_hidden_forward_origin_is_still_a_forward() -> None:
    (post,) = parse_export(chat(message(1, "x", forwarded_from=None))).posts
    assert post.forward == ForwardOrigin()


def test_reply_within_the_channel_only(posts: dict[int, Post]) -> None:
    assert posts[1020].reply_to == 1019
    other_chat = chat(message(1, "x", reply_to_message_id=5, reply_to_peer_id="channel9"))
    assert parse_export(other_chat).posts[0].reply_to is None


@pytest.mark.parametrize(
    ("fields", "media"),
    [
        ({}, None),
        ({"photo": FILE_NOT_INCLUDED, "width": 10, "height": 10}, "photo"),
        ({"file": FILE_NOT_INCLUDED, "media_type": "video_file"}, "video"),
        ({"file": FILE_NOT_INCLUDED, "media_type": "voice_message"}, "voice"),
        ({"file": FILE_NOT_INCLUDED, "media_type": "video_message"}, "video_note"),
        ({"file": FILE_NOT_INCLUDED, "media_type": "sticker"}, "sticker"),
        ({"file": FILE_NOT_INCLUDED, "mime_type": "application/pdf"}, "document"),
        ({"poll": {"question": "?", "answers": []}}, "poll"),
        ({"location_information": {"latitude": 1.0, "longitude": 2.0}}, "location"),
    ],
)
def test_media_kind(fields: dict[str, Any], media: str | None) -> None:
    (post,) = parse_export(chat(message(1, "x", **fields))).posts
    assert post.media == media


def test_video_1019_and_photo_1002(posts: dict[int, Post]) -> None:
    assert posts[1019].media == "video"
    assert posts[1002].media == "photo"


@pytest.mark.parametrize(
    ("part", "bot_type", "url"),
    [
        ({"type": "link", "text": "x.com/a"}, "url", None),
        ({"type": "phone", "text": "+7 495 000"}, "phone_number", None),
        ({"type": "mention_name", "text": "Ann", "user_id": 42}, "text_mention", "tg://user?id=42"),
        ({"type": "bank_card", "text": "4242"}, "bank_card_number", None),
        ({"type": "text_link", "text": "here", "href": "https://e.org/?a=1&b=2"},
         "text_link", "https://e.org/?a=1&b=2"),
        ({"type": "blockquote", "text": "q", "collapsed": True}, "expandable_blockquote", None),
        ({"type": "blockquote", "text": "q"}, "blockquote", None),
        ({"type": "hashtag", "text": "#тег"}, "hashtag", None),
        ({"type": "mention", "text": "@name"}, "mention", None),
        ({"type": "pre", "text": "code", "language": "python"}, "pre", None),
    ],
)  # fmt: skip
def test_entity_types_map_to_bot_api_names(
    part: dict[str, Any], bot_type: str, url: str | None
) -> None:
    text, entities = export_text(["🇷🇺 say ", part, " ☝🏻", ""])
    (parsed,) = entities
    assert (parsed.type, parsed.url, parsed.text) == (bot_type, url, part["text"])
    assert text[parsed.offset : parsed.end] == part["text"]
    assert text == f"🇷🇺 say {part['text']} ☝🏻"


def test_plain_string_text_and_text_entities_fallback() -> None:
    assert export_text("just text") == ("just text", ())
    raw = message(1, text_entities=[{"type": "plain", "text": "a "}, {"type": "bold", "text": "b"}])
    del raw["text"]
    (post,) = parse_export(chat(raw)).posts
    assert post.text == "a b"
    assert [(e.type, e.text) for e in post.entities] == [("bold", "b")]


def test_nested_hashtag_is_lost_in_the_export(posts: dict[int, Post]) -> None:
    post = posts[1015]
    assert "#LIVE" in post.text
    assert "#LIVE" not in [e.text for e in post.entities]
    assert any(e.type == "bold" and e.text.startswith("#LIVE") for e in post.entities)


def test_fixture_album_is_grouped(posts: dict[int, Post]) -> None:
    album = posts[1011]
    assert album.album_items == (1011, 1012, 1013)
    assert album.text.startswith("🇷🇺🇨🇳")
    assert [e.text for e in album.entities if e.type == "hashtag"] == ["#RussiaChina", "#UNGA79"]
    assert 1012 not in posts
    assert 1013 not in posts


PHOTO = {"photo": FILE_NOT_INCLUDED}


@pytest.mark.parametrize(
    ("follower", "grouped"),
    [
        ({}, True),
        ({"date_unixtime": "1727273406"}, False),
        ({"text": "own caption"}, False),
        ({"photo": None, "text": "a text post"}, False),
        ({"from_id": "channel888"}, False),
    ],
)
def test_album_heuristic(follower: dict[str, Any], grouped: bool) -> None:
    second = message(2, **{**PHOTO, **follower})
    if second.get("photo") is None:
        del second["photo"]
    result = ids(chat(message(1, "caption", **PHOTO), second))
    assert result == ([(1, (1, 2))] if grouped else [(1, ()), (2, ())])


def test_album_needs_media_on_the_leader() -> None:
    assert ids(chat(message(1, "text post"), message(2, **PHOTO))) == [(1, ()), (2, ())]


def test_a_poll_or_sticker_of_the_same_second_is_not_an_album_item() -> None:
    poll = message(1, poll={"question": "Q?", "answers": [{"text": "a"}]})
    sticker = message(3, media_type="sticker", sticker_emoji="🙂", file=FILE_NOT_INCLUDED)
    result = ids(chat(poll, message(2, **PHOTO), sticker))
    assert result == [(1, ()), (2, ()), (3, ())]


def test_album_caption_on_the_last_item() -> None:
    result = parse_export(chat(message(1, **PHOTO), message(2, **PHOTO), message(3, "c", **PHOTO)))
    assert [(p.message_id, p.album_items, p.text) for p in result.posts] == [(1, (1, 2, 3), "c")]


def test_two_captions_in_one_second_stay_two_posts() -> None:
    result = ids(chat(message(1, "one", **PHOTO), message(2, "two", **PHOTO)))
    assert result == [(1, ()), (2, ())]


def test_album_never_exceeds_ten_items() -> None:
    items = [message(1, "caption", **PHOTO)] + [message(n, **PHOTO) for n in range(2, 13)]
    assert ids(chat(*items)) == [(1, tuple(range(1, 11))), (11, (11, 12))]


def test_service_and_unsupported_messages_are_skipped() -> None:
    result = parse_export(
        chat(
            {"id": 1, "type": "service", "date_unixtime": "1", "action": "create_channel"},
            message(2, "post"),
            {"id": 3, "type": "unsupported"},
        )
    )
    assert [post.message_id for post in result.posts] == [2]
    assert result.rejected == []
    assert result.read == 3


Breaker = Callable[[dict[str, Any]], object]


def _set(key: str, value: object) -> Breaker:
    def breaker(raw: dict[str, Any]) -> object:
        raw[key] = value
        return raw

    return breaker


def _drop(key: str) -> Breaker:
    def breaker(raw: dict[str, Any]) -> object:
        del raw[key]
        return raw

    return breaker


@pytest.mark.parametrize(
    ("breaker", "reason"),
    [
        (_set("id", "1001"), "id is not an integer"),
        (_set("id", 1.5), "id is not an integer"),
        (_drop("id"), "id is not an integer"),
        (_drop("type"), "no type"),
        (lambda raw: {k: v for k, v in raw.items() if not k.startswith("date")}, "no date"),
        (lambda raw: {**raw, "date_unixtime": None} | {"date": "yesterday"}, "Unix time"),
        (
            lambda raw: {k: v for k, v in raw.items() if k != "date_unixtime"} | {"date": "later"},
            "ISO date",
        ),
        (_set("date_unixtime", "yesterday"), "date_unixtime"),
        (_set("text", 42), "text is a int"),
        (_set("text", ["ok", 7]), "text part 1"),
        (_set("text", [{"type": "bold"}]), "text part 0"),
        (_set("reply_to_message_id", "x"), "reply_to_message_id"),
        (lambda raw: ["not", "a", "message"], "not an object"),
    ],
)
def test_malformed_message_is_rejected_and_the_rest_parses(breaker: Breaker, reason: str) -> None:
    bad = breaker(message(2, "bad"))
    result = parse_export(chat(message(1, "a"), bad, message(3, "b")), source_name="r.json")
    assert [post.message_id for post in result.posts] == [1, 3]
    (rejected,) = result.rejected
    assert (rejected.source, rejected.index) == ("r.json", 1)
    assert reason in rejected.reason


def _full(*chats: object, left: list[object] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"about": "x", "chats": {"about": "y", "list": list(chats)}}
    if left is not None:
        data["left_chats"] = {"about": "z", "list": left}
    return data


def test_full_account_export_reads_channels_and_supergroups_only(export: dict[str, Any]) -> None:
    group = chat(message(1, "group talk"), kind="private_supergroup", id_=5)
    personal = chat(message(3, "hi mum"), message(4, "hi"), kind="personal_chat", id_=6)
    left = chat(message(7, "left channel"), kind="private_channel", id_=9)
    result = parse_export(_full(group, personal, copy.deepcopy(export), left=[left]))
    channels = {post.channel for post in result.posts}
    assert channels == {f"c/{export['id']}", "c/5", "c/9"}
    assert "hi mum" not in {post.text for post in result.posts}
    assert result.read == len(export["messages"]) + 4
    assert result.skipped["not_channel_post"] == 2


def test_full_account_rejects_a_broken_chat_and_indexes_by_path() -> None:
    broken = {"type": "public_channel", "name": "no id", "messages": []}
    bad_message = message(2, "x", date_unixtime=None)
    result = parse_export(_full(broken, chat(message(1, "ok"), bad_message)))
    assert [post.text for post in result.posts] == ["ok"]
    assert [rejected.index for rejected in result.rejected] == ["chats/0", "chats/1/messages/1"]


def test_channel_override_needs_a_single_channel() -> None:
    one = _full(chat(message(1, "a")), chat(message(2, "b"), kind="personal_chat"))
    assert [post.channel for post in parse_export(one, channel="name").posts] == ["name"]
    two = _full(chat(message(1, "a")), chat(message(2, "b"), id_=778))
    with pytest.raises(FormatError, match="2 channels"):
        parse_export(two, channel="name")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([1, 2], "not an object"),
        ({"name": "x"}, "no messages"),
        (chat(message(1, "a"), kind="private_group"), "private_group"),
        ({"type": "public_channel", "id": "x", "messages": []}, "chat id"),
        ({"type": "public_channel", "id": 1, "messages": {}}, "messages"),
        ({"chats": {"list": "nope"}}, "chats.list"),
    ],
)
def test_unusable_export_raises_format_error(data: Any, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_export(data)


def test_lone_surrogate_in_text_is_rejected_not_raised() -> None:
    data = json.loads('{"type": "public_channel", "id": 1, "messages": [{"id": 1, "type": '
                      '"message", "date_unixtime": "1", "text": ["\\ud83d", "x"]}]}')  # fmt: skip
    result = parse_export(data)
    assert result.posts == []
    assert "malformed message" in result.rejected[0].reason


def test_readable_media_text_and_its_parts() -> None:
    giveaway = message(1, giveaway_information={"quantity": 3, "additional_prize": "A mug"})
    todo = message(2, todo_list={"title": "Plan", "answers": [{"text": "a"}, {"text": "b"}]})
    sticker = message(3, media_type="sticker", sticker_emoji="🙂", file=FILE_NOT_INCLUDED)
    winners = message(4, giveaway_results={"winners": [1], "additional_prize": ""})
    posts = {p.message_id: p for p in parse_export(chat(giveaway, todo, sticker, winners)).posts}
    assert (posts[1].media, posts[1].text, posts[1].part_texts("prize")) == (
        "giveaway",
        "A mug",
        ["A mug"],
    )
    assert (posts[2].media, posts[2].text) == ("checklist", "Plan\na\nb")
    assert [part.kind for part in posts[2].parts] == ["title", "item", "item"]
    assert (posts[3].media, posts[3].part_texts("emoji")) == ("sticker", ["🙂"])
    assert (posts[4].media, posts[4].text) == ("giveaway_winners", "")


def test_signature_custom_emoji_and_forward_origin_id() -> None:
    signed = message(
        1,
        [{"type": "custom_emoji", "text": "👍", "document_id": "5368324170671202286"}, " ok"],
        author="Maria Z.",
        forwarded_from="Closed Channel",
        forwarded_from_id="channel1101806611",
    )
    (post,) = parse_export(chat(signed)).posts
    assert post.author == "Maria Z."
    assert [(e.type, e.custom_emoji_id) for e in post.entities] == [
        ("custom_emoji", "5368324170671202286")
    ]
    assert post.forward == ForwardOrigin(title="Closed Channel", channel_id=-1001101806611)


def test_supergroup_messages_carry_their_sender_as_author() -> None:
    group = chat(message(1, "hello", **{"from": "Ivan"}), kind="public_supergroup", id_=55)
    (post,) = parse_export(group).posts
    assert (post.channel, post.author) == ("c/55", "Ivan")
