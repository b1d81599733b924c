"""Bot API updates → posts: channel fields, UTF-16 entities, edits, forwards, albums, rejects."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.core.formats.botapi import (
    MEDIA_FIELDS,
    merge_albums,
    parse_update,
    parse_update_lines,
    parse_updates,
)
from service.core.formats.result import FormatError
from service.core.post import Post

CHAT = {"id": -1001234567890, "title": "Test channel", "username": "TestChan", "type": "channel"}


def units(text: str) -> int:
    """Length in UTF-16 code units, computed independently of the parser."""
    return len(text.encode("utf-16-le")) // 2


def entity(text: str, needle: str, type_: str, **extra: Any) -> dict[str, Any]:
    """A Bot API entity (UTF-16 offsets) covering the first ``needle`` in ``text``."""
    start = units(text[: text.index(needle)])
    return {"offset": start, "length": units(needle), "type": type_, **extra}


def update(
    message_id: int = 1, *, kind: str = "channel_post", update_id: int = 100, **fields: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": message_id, "chat": dict(CHAT), "date": 1727000000}
    content_keys = {"text", "caption", *(name for name, _ in MEDIA_FIELDS)}
    if not content_keys & fields.keys():
        message["text"] = "post"  # a message with nothing to read is a service message
    message.update(fields)
    return {"update_id": update_id, kind: message}


@pytest.fixture
def sample(fixtures_dir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((fixtures_dir / "mfa_russia_sample.json").read_text())
    return data


@pytest.fixture
def versions(sample: list[dict[str, Any]]) -> dict[int, list[Post]]:
    """Every version of every fixture post (albums merged), by message id, in update order."""
    by_id: dict[int, list[Post]] = {}
    for post in parse_updates(sample, source_name="sample").posts:
        by_id.setdefault(post.message_id, []).append(post)
    return by_id


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = raw.get("channel_post") or raw["edited_channel_post"]
    return message


def _is_service(message: dict[str, Any]) -> bool:
    """Nothing to read and no media: told apart here without the parser's own list."""
    content = {"text", "caption", "photo", "video", "poll", "document", "animation", "sticker"}
    return not content & message.keys()


def test_fixture_parses_without_rejects(sample: list[dict[str, Any]]) -> None:
    result = parse_updates(sample, source_name="sample")
    assert result.rejected == []
    assert result.read == len(sample)
    messages = [_message(raw) for raw in sample]
    albums = [m["media_group_id"] for m in messages if "media_group_id" in m]
    followers = len(albums) - len(set(albums))
    services = sum(_is_service(m) for m in messages)
    # Edits are new versions (kept); album followers are merged away; service messages skipped.
    assert services >= 1
    assert len(result.posts) == len(sample) - followers - services
    assert result.skipped == {"service": services}


def test_channel_fields_come_from_the_chat(sample: list[dict[str, Any]]) -> None:
    for raw in sample:
        post = parse_update(raw)
        if _is_service(_message(raw)):
            assert post is None
            continue
        assert post is not None
        chat = _message(raw)["chat"]
        assert post.channel == chat["username"]
        assert post.channel_id == chat["id"]
        assert post.channel_title == chat["title"]
        assert post.update_id == raw["update_id"]
        assert post.source == "botapi"
        assert post.link == f"https://t.me/mfa_russia/{post.message_id}"


def test_private_channel_is_named_by_bare_id() -> None:
    raw = update(5)
    del raw["channel_post"]["chat"]["username"]
    post = parse_update(raw)
    assert post is not None
    assert post.channel == "c/1234567890"
    assert post.channel_id == -1001234567890
    assert post.link == "https://t.me/c/1234567890/5"


def test_every_fixture_entity_matches_its_utf16_slice(sample: list[dict[str, Any]]) -> None:
    for raw in sample:
        message = _message(raw)
        text = message.get("text") or message.get("caption") or ""
        raw_entities = message.get("entities") or message.get("caption_entities") or []
        post = parse_update(raw)
        if _is_service(message):
            continue
        assert post is not None
        encoded = text.encode("utf-16-le")
        assert len(post.entities) == len(raw_entities)
        for parsed, original in zip(post.entities, raw_entities, strict=True):
            start, end = 2 * original["offset"], 2 * (original["offset"] + original["length"])
            expected = encoded[start:end].decode("utf-16-le")
            assert parsed.text == expected
            assert post.text[parsed.offset : parsed.end] == expected
            assert parsed.type == original["type"]
            assert parsed.url == original.get("url")


@pytest.mark.parametrize(
    ("message_id", "type_", "expected", "after"),
    [
        (1008, "hashtag", "#UNGA79", "🇷🇺"),
        (1005, "bold", "Russia’s presence in Africa", "☝🏻"),
        (1009, "text_link", "Read in full", "❗️"),
        (1011, "hashtag", "#RussiaChina", "🇷🇺"),
        (1019, "hashtag", "#UNGA79", "🇷🇺"),
        (1000, "url", "x.com/mfa_russia", "🔊"),
    ],
)
def test_fixture_entities_after_astral_emoji(
    versions: dict[int, list[Post]], message_id: int, type_: str, expected: str, after: str
) -> None:
    post = versions[message_id][-1]
    assert after in post.text[: post.text.index(expected)]
    found = [e for e in post.entities if e.type == type_ and e.text == expected]
    assert found
    assert all(post.text[e.offset : e.end] == expected for e in found)


TRICKY = "🇷🇺 #Россия ☝🏻 @mfa_russia 3⃣ https://x.com/a ❗️ #UNGA79 🇷🇺"


@pytest.mark.parametrize(
    ("needle", "type_"),
    [
        ("#Россия", "hashtag"),
        ("@mfa_russia", "mention"),
        ("https://x.com/a", "url"),
        ("#UNGA79", "hashtag"),
        ("🇷🇺 #Россия", "bold"),
        ("☝🏻", "italic"),
        ("3⃣", "underline"),
        ("❗️ #UNGA79 🇷🇺", "spoiler"),
    ],
)
def test_utf16_offsets_around_flags_skin_tones_keycaps(needle: str, type_: str) -> None:
    raw = update(text=TRICKY, entities=[entity(TRICKY, needle, type_)])
    post = parse_update(raw)
    assert post is not None
    (parsed,) = post.entities
    assert parsed.text == needle
    assert post.text[parsed.offset : parsed.offset + parsed.length] == needle


def test_text_link_and_text_mention_keep_their_target() -> None:
    text = "read this, ask him"
    raw = update(
        text=text,
        entities=[
            entity(text, "this", "text_link", url="https://example.org/?a=1&b=2"),
            entity(text, "him", "text_mention", user={"id": 42, "first_name": "A"}),
        ],
    )
    post = parse_update(raw)
    assert post is not None
    assert [(e.type, e.url) for e in post.entities] == [
        ("text_link", "https://example.org/?a=1&b=2"),
        ("text_mention", "tg://user?id=42"),
    ]


@pytest.mark.parametrize("message_id", [1003, 1008])
def test_edits_are_new_versions_with_edit_date(
    sample: list[dict[str, Any]], versions: dict[int, list[Post]], message_id: int
) -> None:
    original, edited = versions[message_id]
    raw_edit = next(
        _message(raw)
        for raw in sample
        if "edited_channel_post" in raw and _message(raw)["message_id"] == message_id
    )
    assert not original.edited
    assert original.edit_date is None
    assert edited.edited
    assert edited.edit_date == datetime.fromtimestamp(raw_edit["edit_date"], UTC)
    assert edited.date == original.date
    assert edited.text == raw_edit["text"]
    assert edited.text != original.text
    assert edited.content_hash != original.content_hash


def test_edit_adds_hashtag_in_1008(versions: dict[int, list[Post]]) -> None:
    original, edited = versions[1008]
    assert [e.text for e in original.entities if e.type == "hashtag"] == []
    assert [e.text for e in edited.entities if e.type == "hashtag"] == ["#UNGA79"]


def test_channel_post_already_edited_counts_as_edited() -> None:
    post = parse_update(update(text="x", edit_date=1727000100))
    assert post is not None
    assert post.edited
    assert post.edit_date == datetime.fromtimestamp(1727000100, UTC)


def test_forward_from_channel_1002(versions: dict[int, list[Post]]) -> None:
    forward = versions[1002][0].forward
    assert forward is not None
    assert forward.title == "Russian Mission Geneva"
    assert forward.username == "rusmission_geneva"
    assert forward.message_id == 3187
    assert forward.link == "https://t.me/rusmission_geneva/3187"


@pytest.mark.parametrize(
    ("fields", "title", "username", "message_id"),
    [
        (
            {"forward_origin": {"type": "user", "date": 1,
                                "sender_user": {"id": 7, "first_name": "Ann", "last_name": "Lee",
                                                "username": "annlee"}}},
            "Ann Lee", "annlee", None,
        ),
        ({"forward_origin": {"type": "hidden_user", "sender_user_name": "Bob", "date": 1}},
         "Bob", None, None),
        (
            {"forward_origin": {"type": "chat", "date": 1,
                                "sender_chat": {"id": -100555, "title": "Group", "type": "group"}}},
            "Group", None, None,
        ),
        (
            {"forward_from_chat": {"id": -100777, "title": "Old", "username": "old_api",
                                   "type": "channel"}, "forward_from_message_id": 9},
            "Old", "old_api", 9,
        ),
    ],
)  # fmt: skip
def test_forward_origin_variants(
    fields: dict[str, Any], title: str, username: str | None, message_id: int | None
) -> None:
    post = parse_update(update(text="fwd", **fields))
    assert post is not None
    assert post.forward is not None
    assert (post.forward.title, post.forward.username, post.forward.message_id) == (
        title,
        username,
        message_id,
    )


def test_reply_1020_points_at_1019(versions: dict[int, list[Post]]) -> None:
    assert versions[1020][0].reply_to == 1019
    assert versions[1019][0].reply_to is None


@pytest.mark.parametrize(
    ("fields", "media"),
    [
        ({"text": "plain"}, None),
        ({"photo": [{"file_id": "a", "file_unique_id": "b", "width": 1, "height": 1}]}, "photo"),
        ({"video": {"file_id": "a", "duration": 3}}, "video"),
        ({"animation": {"file_id": "a"}, "document": {"file_id": "a"}}, "animation"),
        ({"document": {"file_id": "a"}}, "document"),
        ({"voice": {"file_id": "a"}}, "voice"),
        ({"poll": {"id": "1", "question": "?"}}, "poll"),
    ],
)
def test_media_kind(fields: dict[str, Any], media: str | None) -> None:
    post = parse_update(update(**fields))
    assert post is not None
    assert post.media == media


def test_fixture_album_becomes_one_post(sample: list[dict[str, Any]]) -> None:
    posts = parse_updates(sample).posts
    album = [post for post in posts if post.album_items and post.message_id == 1011]
    assert len(album) == 1
    (post,) = album
    caption = next(
        _message(raw)["caption"] for raw in sample if _message(raw)["message_id"] == 1011
    )
    assert post.message_id == 1011
    assert post.album_items == (1011, 1012, 1013)
    assert post.text == caption
    assert [e.text for e in post.entities] == ["#RussiaChina", "#UNGA79"]
    assert not any(p.message_id in (1012, 1013) for p in posts)


def test_albums_can_be_left_unmerged(sample: list[dict[str, Any]]) -> None:
    posts = parse_updates(sample, group_albums=False).posts
    items = [post for post in posts if post.album_id is not None]
    assert [post.message_id for post in items] == [1011, 1012, 1013, 1023, 1024, 1025]
    assert len({post.album_id for post in items}) == 2


def test_fixture_album_captioned_on_its_second_item_is_one_post(
    sample: list[dict[str, Any]],
) -> None:
    captioned = [_message(raw) for raw in sample if _message(raw).get("message_id") == 1024]
    posts = [post for post in parse_updates(sample).posts if 1024 in post.album_items]
    assert [(p.message_id, p.album_items) for p in posts] == [(1023, (1023, 1024, 1025))]
    assert posts[0].text == captioned[0]["caption"]
    assert [(e.type, e.text) for e in posts[0].entities] == [("hashtag", "#UNGA79")]
    assert not any(post.message_id in (1024, 1025) for post in parse_updates(sample).posts)


def test_fixture_poll_reads_as_question_and_options(sample: list[dict[str, Any]]) -> None:
    (poll,) = [_message(raw)["poll"] for raw in sample if "poll" in _message(raw)]
    (post,) = [post for post in parse_updates(sample).posts if post.media == "poll"]
    assert post.text.split("\n") == [poll["question"], *(o["text"] for o in poll["options"])]
    assert post.part_texts("question") == [poll["question"]]
    assert post.part_texts("option") == [o["text"] for o in poll["options"]]


def _album_item(message_id: int, caption: str = "", group: str = "g1") -> Post:
    fields: dict[str, Any] = {"media_group_id": group, "photo": [{"file_id": "x"}]}
    if caption:
        fields["caption"] = caption
    post = parse_update(update(message_id, update_id=message_id, **fields))
    assert post is not None
    return post


def test_merge_albums_takes_caption_from_any_item_and_smallest_id() -> None:
    items = [_album_item(12), _album_item(11), _album_item(13, caption="the caption")]
    (post,) = merge_albums(items)
    assert post.message_id == 11
    assert post.album_items == (11, 12, 13)
    assert post.text == "the caption"


def test_merge_albums_keeps_order_and_separates_groups() -> None:
    single = parse_update(update(20, text="between"))
    assert single is not None
    posts = [
        _album_item(10, "first"),
        single,
        _album_item(11, group="g1"),
        _album_item(30, "second", group="g2"),
        _album_item(31, group="g2"),
    ]
    merged = merge_albums(posts)
    assert [(p.message_id, p.album_items, p.text) for p in merged] == [
        (10, (10, 11), "first"),
        (20, (), "between"),
        (30, (30, 31), "second"),
    ]


def test_merge_albums_turns_a_caption_edit_into_a_new_album_version() -> None:
    edit = parse_update(
        update(10, kind="edited_channel_post", update_id=99, media_group_id="g1",
               photo=[{"file_id": "x"}], caption="fixed", edit_date=1727000500)
    )  # fmt: skip
    assert edit is not None
    merged = merge_albums([_album_item(10, "fxied"), _album_item(11), edit])
    assert [(p.message_id, p.album_items, p.text, p.edited) for p in merged] == [
        (10, (10, 11), "fxied", False),
        (10, (10, 11), "fixed", True),
    ]
    assert merged[1].update_id == 99


def test_getupdates_response_and_single_update_are_accepted() -> None:
    wrapped = parse_updates({"ok": True, "result": [update(1), update(2)]})
    assert [post.message_id for post in wrapped.posts] == [1, 2]
    single = parse_updates(update(3, text="webhook"))
    assert [post.text for post in single.posts] == ["webhook"]


def test_non_channel_updates_are_skipped_not_rejected() -> None:
    result = parse_updates(
        [{"update_id": 1, "message": {"message_id": 1}}, update(2), {"update_id": 3}]
    )
    assert [post.message_id for post in result.posts] == [2]
    assert result.rejected == []
    assert result.read == 3


@pytest.mark.parametrize(
    "data",
    [{"ok": False, "error_code": 401, "description": "Unauthorized"}, 42, "text", {"foo": 1}],
)
def test_unusable_input_raises_format_error(data: object) -> None:
    with pytest.raises(FormatError):
        parse_updates(data)


def test_failed_getupdates_says_why() -> None:
    with pytest.raises(FormatError, match="Unauthorized"):
        parse_updates({"ok": False, "description": "Unauthorized"})


Breaker = Callable[[dict[str, Any]], object]


def _drop(key: str) -> Breaker:
    def breaker(raw: dict[str, Any]) -> object:
        del raw["channel_post"][key]
        return raw

    return breaker


def _set(key: str, value: object) -> Breaker:
    def breaker(raw: dict[str, Any]) -> object:
        raw["channel_post"][key] = value
        return raw

    return breaker


@pytest.mark.parametrize(
    ("breaker", "reason"),
    [
        (_drop("chat"), "no chat"),
        (_drop("date"), "no date"),
        (_set("date", "yesterday"), "date"),
        (_set("date", 10**20), "Unix time"),
        (_set("message_id", "7"), "message_id"),
        (_set("message_id", True), "message_id"),
        (_set("chat", "mfa_russia"), "chat"),
        (_set("chat", {"title": "no id"}), "chat.id"),
        (_set("text", 5), "text"),
        (_set("entities", {"offset": 0}), "entities"),
        (_set("entities", [{"offset": 0, "length": 99, "type": "bold"}]), "outside"),
        (_set("entities", [{"offset": -1, "length": 1, "type": "bold"}]), "outside"),
        (_set("entities", [{"offset": 0, "length": 1}]), "type"),
        (_set("entities", [{"offset": "0", "length": 1, "type": "bold"}]), "offset"),
        (lambda raw: {"update_id": 1, "channel_post": ["not", "an", "object"]}, "object"),
        (lambda raw: "garbage", "not an object"),
        (lambda raw: None, "not an object"),
    ],
)
def test_malformed_update_is_rejected_and_the_rest_parses(breaker: Breaker, reason: str) -> None:
    bad = breaker(update(2, text="hello"))
    result = parse_updates([update(1, text="a"), bad, update(3, text="b")], source_name="in.json")
    assert [post.message_id for post in result.posts] == [1, 3]
    (rejected,) = result.rejected
    assert (rejected.source, rejected.index) == ("in.json", 1)
    assert reason in rejected.reason
    assert rejected.raw
    if isinstance(bad, dict):
        with pytest.raises(FormatError):
            parse_update(bad)


def test_json_lines_reject_bad_lines_by_number() -> None:
    lines = [json.dumps(update(1)), "", "{not json", json.dumps(update(2, text=5)), "[1]"]
    result = parse_update_lines("\n".join(lines), source_name="live.jsonl")
    assert [post.message_id for post in result.posts] == [1]
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejected] == [
        (3, "invalid JSON"),
        (4, "text is not a string"),
        (5, "update is a list, not an object"),
    ]
    assert result.read == 4


def test_json_lines_with_no_json_at_all_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="JSON lines"):
        parse_update_lines("hello\nworld\n")


def test_lone_surrogate_in_text_is_rejected_not_raised() -> None:
    data = '[{"update_id": 1, "channel_post": {"message_id": 1, "date": 1, "text": "\\ud83d x",'
    data += ' "chat": {"id": -1001, "type": "channel"}}}]'
    result = parse_updates(json.loads(data))
    assert result.posts == []
    (rejected,) = result.rejected
    assert "malformed update" in rejected.reason


def test_signature_and_custom_emoji_ids_are_kept() -> None:
    text = "👍 agreed"
    raw = update(
        text=text,
        author_signature="Maria Z.",
        entities=[entity(text, "👍", "custom_emoji", custom_emoji_id="5368324170671202286")],
    )
    post = parse_update(raw)
    assert post is not None
    assert post.author == "Maria Z."
    assert [(e.text, e.custom_emoji_id) for e in post.entities] == [("👍", "5368324170671202286")]


def test_giveaway_prize_is_the_text() -> None:
    giveaway = {"chats": [CHAT], "winners_selection_date": 1727100000, "winner_count": 3,
                "prize_description": "Three signed copies"}  # fmt: skip
    post = parse_update(update(giveaway=giveaway))
    assert post is not None
    assert (post.media, post.text, post.part_texts("prize")) == (
        "giveaway",
        "Three signed copies",
        ["Three signed copies"],
    )


@pytest.mark.parametrize(
    "service",
    [
        {"pinned_message": {"message_id": 1, "date": 1, "chat": CHAT}},
        {"new_chat_title": "New name"},
        {"giveaway_completed": {"winner_count": 0}},
        {"boost_added": {"boost_count": 4}},
        {"some_kind_telegram_adds_next_year": {"anything": True}},
    ],
)
def test_service_messages_are_skipped_by_shape_not_by_list(service: dict[str, Any]) -> None:
    raw = {"update_id": 1, "channel_post": {"message_id": 9, "chat": CHAT, "date": 1727000000}}
    raw["channel_post"].update(service)
    result = parse_updates([raw, update(10)])
    assert [post.message_id for post in result.posts] == [10]
    assert (result.rejected, result.skipped) == ([], {"service": 1})
