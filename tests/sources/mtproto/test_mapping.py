"""Telethon messages → posts, tested on real TL objects read back through Telethon's serializer.

The shared sample channel exists as Bot API updates, a Desktop export and a preview page; the
same messages built as MTProto updates must come out as the same posts as all three parsers give.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telethon.tl import types

from service.core.formats.botapi import parse_update, parse_updates
from service.core.formats.export import parse_export
from service.core.formats.preview import parse_preview
from service.core.post import Post, bare_channel_id, utf16_to_index
from service.sources.mtproto.albums import assemble_album, group_albums
from service.sources.mtproto.client import ChannelMessage, Deletion
from service.sources.mtproto.mapping import (
    Peers,
    Utf16Offsets,
    events_from_updates,
    map_message,
    media_kind,
    messages_from_history,
)
from tests.sources.mtproto import tl

BARE = 1234567890
DATE = datetime(2024, 9, 23, 15, 41, 5, tzinfo=UTC)
CHANNEL = tl.channel(BARE, "Test channel", "TestChan")


def units(text: str) -> int:
    """Length in UTF-16 code units, computed independently of the mapping."""
    return len(text.encode("utf-16-le")) // 2


def span(text: str, needle: str) -> tuple[int, int]:
    return units(text[: text.index(needle)]), units(needle)


def one(message: Any, *, chats: list[Any] | None = None, users: list[Any] | None = None,
        edited: bool = False) -> ChannelMessage:  # fmt: skip
    """The event a live account gets for ``message``, after Telethon's own round trip."""
    kind = types.UpdateEditChannelMessage if edited else types.UpdateNewChannelMessage
    container = types.Updates(
        updates=[kind(message=message, pts=10, pts_count=1)],
        users=users or [], chats=[CHANNEL] if chats is None else chats, date=DATE, seq=0,
    )  # fmt: skip
    (event,) = events_from_updates(tl.roundtrip(container))
    assert isinstance(event, ChannelMessage)
    return event


def post_of(message: Any, **options: Any) -> Post:
    event = one(message, **options)
    assert event.post is not None, event
    return event.post


# --- the shared sample, against every other format -----------------------------------------------
@pytest.fixture
def sample(fixtures_dir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((fixtures_dir / "mfa_russia_sample.json").read_text())
    return data


@pytest.fixture
def mtproto(sample: list[dict[str, Any]]) -> list[ChannelMessage]:
    events = [
        event for u in sample for event in events_from_updates(tl.roundtrip(tl.from_bot_api(u)))
    ]
    assert all(isinstance(event, ChannelMessage) for event in events)
    return events  # type: ignore[return-value]


def _latest_with_albums(events: list[ChannelMessage]) -> dict[int, Post]:
    """The final version of each post, albums made one post (what the export and preview hold)."""
    latest: dict[int, Post] = {}
    for event in events:
        if event.post is not None:
            latest[event.message_id] = event.post
    return {post.message_id: post for post in group_albums(list(latest.values()))}


def test_every_sample_update_maps_like_the_bot_api_parser(
    sample: list[dict[str, Any]], mtproto: list[ChannelMessage]
) -> None:
    assert len(mtproto) == len(sample)
    skipped = 0
    for update, event in zip(sample, mtproto, strict=True):
        expected = parse_update(update)
        if expected is None:  # a service message: skipped by both, by its shape
            assert (event.post, event.rejected) == (None, None)
            skipped += 1
            continue
        assert event.post is not None
        post = event.post
        assert post.source == "mtproto"
        assert (post.channel, post.message_id, post.date) == (
            expected.channel,
            expected.message_id,
            expected.date,
        )
        assert bare_channel_id(post.channel_id or 0) == bare_channel_id(expected.channel_id or 0)
        assert post.channel_title == expected.channel_title
        assert post.text == expected.text
        assert post.content_hash == expected.content_hash
        assert post.entities == expected.entities
        assert post.parts == expected.parts
        assert (post.media, post.album_id, post.reply_to) == (
            expected.media,
            expected.album_id,
            expected.reply_to,
        )
        assert (post.edited, post.edit_date) == (expected.edited, expected.edit_date)
        assert event.edited == ("edited_channel_post" in update)
        assert (post.forward is None) == (expected.forward is None)
        if post.forward is not None and expected.forward is not None:
            assert post.forward.title == expected.forward.title
            assert post.forward.username == expected.forward.username
            assert post.forward.message_id == expected.forward.message_id
            assert post.forward.link == expected.forward.link
            assert bare_channel_id(post.forward.channel_id or 0) == bare_channel_id(
                expected.forward.channel_id or 0
            )
    assert skipped == 1  # the pin of the poll


def test_the_sample_albums_are_one_post_each_as_the_bot_api_parser_makes_them(
    sample: list[dict[str, Any]], mtproto: list[ChannelMessage]
) -> None:
    bot_albums = [p for p in parse_updates(sample).posts if p.album_items]
    assert len(bot_albums) == 2  # the second one captioned on its last item
    for bot_album in bot_albums:
        items = [e.post for e in mtproto if e.post and e.post.album_id == bot_album.album_id]
        album = assemble_album([item for item in items if item is not None])
        assert (album.message_id, album.album_items) == (
            bot_album.message_id,
            bot_album.album_items,
        )
        assert (album.text, album.entities, album.parts, album.date) == (
            bot_album.text,
            bot_album.entities,
            bot_album.parts,
            bot_album.date,
        )
    assert bot_albums[0].album_items == (1011, 1012, 1013)


def test_final_posts_agree_with_the_export_and_the_preview(
    fixtures_dir: Path, mtproto: list[ChannelMessage]
) -> None:
    mine = _latest_with_albums(mtproto)
    export_data = json.loads((fixtures_dir / "mfa_russia_export.json").read_text())
    exported = {p.message_id: p for p in parse_export(export_data, channel="mfa_russia").posts}
    html = (fixtures_dir / "mfa_russia_preview.html").read_text()
    previewed = {p.message_id: p for p in parse_preview(html).posts}
    assert set(mine) == set(exported)
    assert set(previewed) <= set(mine) and previewed
    detected = ("hashtag", "mention", "url", "text_link")
    for message_id, post in mine.items():
        others = [exported[message_id]] + (
            [previewed[message_id]] if message_id in previewed else []
        )
        for other in others:
            assert other.text == post.text, message_id
            assert (other.date, other.edited, other.reply_to) == (post.date, post.edited,
                                                                  post.reply_to)  # fmt: skip
            assert other.album_items == post.album_items, message_id
            assert (other.forward is None) == (post.forward is None)
            if other.forward is not None and post.forward is not None:
                assert other.forward.title == post.forward.title
        assert exported[message_id].media == post.media
        assert exported[message_id].edit_date == post.edit_date
        if message_id in previewed:
            theirs = previewed[message_id]
            assert [(e.type, e.text, e.url) for e in theirs.entities if e.type in detected] == [
                (e.type, e.text, e.url) for e in post.entities if e.type in detected
            ]
            if post.forward is not None:
                assert theirs.forward is not None and theirs.forward.link == post.forward.link


# --- text and entities ----------------------------------------------------------------------------
TRICKY = "🇷🇺 #Россия ☝🏻 @mfa_russia 3⃣ https://x.com/a ❗️ #UNGA79 🇷🇺"


@pytest.mark.parametrize(
    ("needle", "entity_class", "type_"),
    [
        ("#Россия", types.MessageEntityHashtag, "hashtag"),
        ("@mfa_russia", types.MessageEntityMention, "mention"),
        ("https://x.com/a", types.MessageEntityUrl, "url"),
        ("#UNGA79", types.MessageEntityHashtag, "hashtag"),
        ("🇷🇺 #Россия", types.MessageEntityBold, "bold"),
        ("☝🏻", types.MessageEntityItalic, "italic"),
        ("3⃣", types.MessageEntityUnderline, "underline"),
        ("❗️ #UNGA79 🇷🇺", types.MessageEntitySpoiler, "spoiler"),
    ],
)
def test_utf16_offsets_around_flags_skin_tones_keycaps(
    needle: str, entity_class: type, type_: str
) -> None:
    offset, length = span(TRICKY, needle)
    post = post_of(tl.message(BARE, 7, DATE, TRICKY, entities=[entity_class(offset, length)]))
    (parsed,) = post.entities
    assert (parsed.type, parsed.text) == (type_, needle)
    assert post.text[parsed.offset : parsed.end] == needle


def test_every_entity_kind_gets_its_bot_api_name_and_target() -> None:
    text = "a b c d e f g h i j k l m n o p q r s"
    at = {letter: (text.index(letter), 1) for letter in "abcdefghijklmnopqrs"}
    entities = [
        types.MessageEntityCashtag(*at["a"]),
        types.MessageEntityBotCommand(*at["b"]),
        types.MessageEntityEmail(*at["c"]),
        types.MessageEntityPhone(*at["d"]),
        types.MessageEntityBankCard(*at["e"]),
        types.MessageEntityStrike(*at["f"]),
        types.MessageEntityCode(*at["g"]),
        types.MessageEntityPre(*at["h"], language="python"),
        types.MessageEntityTextUrl(*at["i"], url="https://example.org/x?y=1"),
        types.MessageEntityMentionName(*at["j"], user_id=42),
        types.MessageEntityCustomEmoji(*at["k"], document_id=5368324170671202286),
        types.MessageEntityBlockquote(*at["l"]),
        types.MessageEntityBlockquote(*at["m"], collapsed=True),
        types.MessageEntityUnknown(*at["n"]),
    ]
    post = post_of(tl.message(BARE, 8, DATE, text, entities=entities))
    assert [(e.type, e.text, e.url) for e in post.entities] == [
        ("cashtag", "a", None),
        ("bot_command", "b", None),
        ("email", "c", None),
        ("phone_number", "d", None),
        ("bank_card_number", "e", None),
        ("strikethrough", "f", None),
        ("code", "g", None),
        ("pre", "h", None),
        ("text_link", "i", "https://example.org/x?y=1"),
        ("text_mention", "j", "tg://user?id=42"),
        ("custom_emoji", "k", None),
        ("blockquote", "l", None),
        ("expandable_blockquote", "m", None),
    ]
    (emoji,) = [e for e in post.entities if e.type == "custom_emoji"]
    assert emoji.custom_emoji_id == "5368324170671202286"  # as the Bot API gives it


def test_an_entity_outside_the_text_sets_the_message_aside_and_the_rest_maps() -> None:
    bad = tl.message(BARE, 9, DATE, "short", entities=[types.MessageEntityBold(2, 40)])
    good = tl.message(BARE, 10, DATE, "fine")
    container = types.Updates(
        updates=[types.UpdateNewChannelMessage(m, pts=1, pts_count=1) for m in (bad, good)],
        users=[], chats=[CHANNEL], date=DATE, seq=0,
    )  # fmt: skip
    first, second = events_from_updates(tl.roundtrip(container))
    assert isinstance(first, ChannelMessage) and isinstance(second, ChannelMessage)
    assert first.post is None and first.rejected is not None
    assert first.rejected.index == 9
    assert "outside the text" in first.rejected.reason
    assert first.rejected.source == "mtproto:testchan"
    assert second.post is not None and second.post.text == "fine"


# --- media, albums, forwards, replies, signatures -------------------------------------------------
@pytest.mark.parametrize(
    ("media", "kind"),
    [
        (tl.photo(1, DATE), "photo"),
        (tl.video(2, DATE), "video"),
        (tl.document(3, DATE, types.DocumentAttributeVideo(5.0, 240, 240, round_message=True)),
         "video_note"),
        (tl.document(4, DATE, types.DocumentAttributeAnimated(),
                     types.DocumentAttributeVideo(3.0, 320, 200)), "animation"),
        (tl.document(5, DATE, types.DocumentAttributeAudio(12, voice=True), mime="audio/ogg"),
         "voice"),
        (tl.document(6, DATE, types.DocumentAttributeAudio(200, title="Song"), mime="audio/mpeg"),
         "audio"),
        (tl.document(7, DATE, types.DocumentAttributeSticker("🙂", types.InputStickerSetEmpty()),
                     mime="image/webp"), "sticker"),
        (tl.document(8, DATE, types.DocumentAttributeFilename("report.pdf"),
                     mime="application/pdf"), "document"),
        (types.MessageMediaGeo(types.GeoPoint(37.6, 55.7, 1)), "location"),
        (types.MessageMediaContact("+100", "A", "B", "", 0), "contact"),
        (types.MessageMediaDice(3, "🎲"), "dice"),
        (types.MessageMediaPoll(
            types.Poll(1, types.TextWithEntities("Q?", []),
                       [types.PollAnswer(types.TextWithEntities("yes", []), b"0")], hash=0),
            types.PollResults()), "poll"),
        (types.MessageMediaWebPage(types.WebPageEmpty(1)), None),
        (types.MessageMediaEmpty(), None),
    ],
)  # fmt: skip
def test_media_kinds(media: Any, kind: str | None) -> None:
    assert post_of(tl.message(BARE, 11, DATE, "caption", media=media)).media == kind
    assert media_kind(tl.roundtrip(media)) == kind


def test_album_items_share_their_grouped_id_and_make_one_post() -> None:
    items = [
        post_of(tl.message(BARE, 21, DATE, "", media=tl.photo(21, DATE), grouped_id=77)),
        post_of(
            tl.message(
                BARE,
                22,
                DATE,
                "The caption #tag",
                media=tl.photo(22, DATE),
                grouped_id=77,
                entities=[types.MessageEntityHashtag(12, 4)],
            )
        ),
        post_of(tl.message(BARE, 23, DATE, "", media=tl.video(23, DATE), grouped_id=77)),
    ]
    assert {item.album_id for item in items} == {"77"}
    album = assemble_album(list(reversed(items)))
    assert (album.message_id, album.album_items) == (21, (21, 22, 23))
    assert album.text == "The caption #tag"
    assert [(e.type, e.text) for e in album.entities] == [("hashtag", "#tag")]
    single = post_of(tl.message(BARE, 24, DATE, "alone"))
    assert [p.message_id for p in group_albums([items[2], single, items[0], items[1]])] == [21, 24]


def test_forward_from_a_channel_names_it_from_the_chats_it_came_with() -> None:
    origin = tl.channel(2002, "Origin channel", "origin_ch")
    header = types.MessageFwdHeader(date=DATE, from_id=types.PeerChannel(2002), channel_post=3187,
                                    post_author="Maria")  # fmt: skip
    post = post_of(tl.message(BARE, 30, DATE, "fwd", fwd_from=header), chats=[CHANNEL, origin])
    assert post.forward is not None
    assert (post.forward.title, post.forward.username, post.forward.message_id) == (
        "Origin channel",
        "origin_ch",
        3187,
    )
    assert post.forward.channel_id == -1_000_000_002_002
    assert post.forward.link == "https://t.me/origin_ch/3187"


def test_forward_from_an_unknown_channel_keeps_its_id_and_message() -> None:
    header = types.MessageFwdHeader(date=DATE, from_id=types.PeerChannel(2003), channel_post=5)
    post = post_of(tl.message(BARE, 31, DATE, "fwd", fwd_from=header))
    assert post.forward is not None
    assert (post.forward.channel_id, post.forward.message_id, post.forward.link) == (
        -1_000_000_002_003,
        5,
        None,
    )


def test_forward_from_a_user_and_from_a_hidden_user() -> None:
    user = types.User(id=55, first_name="Anna", last_name="K", username="annak")
    header = types.MessageFwdHeader(date=DATE, from_id=types.PeerUser(55))
    post = post_of(tl.message(BARE, 32, DATE, "u", fwd_from=header), users=[user])
    assert post.forward is not None and (post.forward.title, post.forward.username) == (
        "Anna K",
        "annak",
    )
    hidden = types.MessageFwdHeader(date=DATE, from_name="Somebody")
    post = post_of(tl.message(BARE, 33, DATE, "h", fwd_from=hidden))
    assert post.forward is not None and post.forward.title == "Somebody"
    assert post.forward.channel_id is None


def test_reply_within_the_channel_only() -> None:
    same = types.MessageReplyHeader(reply_to_msg_id=19)
    other = types.MessageReplyHeader(reply_to_msg_id=19, reply_to_peer_id=types.PeerChannel(9))
    assert post_of(tl.message(BARE, 40, DATE, "r", reply_to=same)).reply_to == 19
    assert post_of(tl.message(BARE, 41, DATE, "r", reply_to=other)).reply_to is None


def test_author_signature_views_and_edits() -> None:
    edited_at = datetime(2024, 9, 24, tzinfo=UTC)
    post = post_of(
        tl.message(BARE, 50, DATE, "signed", post_author="Ivan Petrov", views=17900, forwards=12,
                   edit_date=edited_at),
        edited=True,
    )  # fmt: skip
    assert (post.author, post.views, post.edit_date, post.edited) == (
        "Ivan Petrov",
        17900,
        edited_at,
        True,
    )
    hidden = post_of(tl.message(BARE, 51, DATE, "x", edit_date=edited_at, edit_hide=True))
    assert (hidden.edited, hidden.edit_date) == (False, None)
    assert Post.from_dict(json.loads(json.dumps(post.to_dict()))) == post


def test_private_channel_is_named_by_its_bare_id() -> None:
    private = tl.channel(BARE, "Closed", None)
    post = post_of(tl.message(BARE, 60, DATE, "secret"), chats=[private])
    assert (post.channel, post.channel_title, post.link) == (
        f"c/{BARE}",
        "Closed",
        f"https://t.me/c/{BARE}/60",
    )


# --- what is not a post ---------------------------------------------------------------------------
def test_service_messages_are_skipped_but_keep_their_id() -> None:
    service = types.MessageService(
        id=70, peer_id=types.PeerChannel(BARE), date=DATE,
        action=types.MessageActionPinMessage(), post=True,
    )  # fmt: skip
    event = one(service)
    assert (event.message_id, event.post, event.rejected) == (70, None, None)


def test_a_group_message_is_not_a_channel_post() -> None:
    group = types.Message(id=71, peer_id=types.PeerChannel(BARE), date=DATE, message="hi",
                          from_id=types.PeerUser(5))  # fmt: skip
    event = one(group)
    assert event.post is None and event.rejected is None


def test_deletions_and_other_updates() -> None:
    container = types.Updates(
        updates=[
            types.UpdateDeleteChannelMessages(channel_id=BARE, messages=[80, 81], pts=3,
                                              pts_count=2),
            types.UpdateUserStatus(user_id=5, status=types.UserStatusOnline(DATE)),
            types.UpdateNewMessage(
                message=types.Message(id=1, peer_id=types.PeerUser(5), date=DATE, message="dm"),
                pts=1, pts_count=1),
        ],
        users=[], chats=[], date=DATE, seq=0,
    )  # fmt: skip
    assert events_from_updates(tl.roundtrip(container)) == [Deletion(BARE, (80, 81))]
    single = types.UpdateDeleteChannelMessages(channel_id=BARE, messages=[82], pts=4, pts_count=1)
    assert events_from_updates(tl.roundtrip(single)) == [Deletion(BARE, (82,))]


def test_a_history_page_maps_newest_first() -> None:
    page = types.messages.ChannelMessages(
        pts=5, count=3,
        messages=[tl.message(BARE, 92, DATE, "newest"),
                  types.MessageService(id=91, peer_id=types.PeerChannel(BARE), date=DATE,
                                       action=types.MessageActionChatEditTitle("T")),
                  tl.message(BARE, 90, DATE, "oldest")],
        topics=[], chats=[CHANNEL], users=[],
    )  # fmt: skip
    mapped = messages_from_history(tl.roundtrip(page))
    assert [(m.message_id, m.post.text if m.post else None) for m in mapped] == [
        (92, "newest"),
        (91, None),
        (90, "oldest"),
    ]
    assert all(m.post is None or m.post.channel == "TestChan" for m in mapped)
    direct = types.Message(id=1, peer_id=types.PeerUser(5), date=DATE, message="not a channel")
    assert map_message(tl.roundtrip(direct), Peers()) is None


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60))
def test_utf16_offsets_agree_with_the_core_table(text: str) -> None:
    offsets, table = Utf16Offsets(text), utf16_to_index(text)
    assert offsets.units == len(table) - 1 == len(text.encode("utf-16-le")) // 2
    assert [offsets.index(unit) for unit in range(len(table))] == table


BOT_CHAT = {"id": -(10**12 + BARE), "title": "Test channel", "username": "TestChan",
            "type": "channel"}  # fmt: skip
TASKS = [{"id": 1, "text": "Read the report"}, {"id": 2, "text": "Check #sources"}]


@pytest.mark.parametrize(
    ("bot_fields", "media", "text"),
    [
        ({"sticker": {"file_id": "x", "file_unique_id": "y", "type": "regular", "width": 512,
                      "height": 512, "is_animated": False, "is_video": False, "emoji": "🙂"}},
         tl.document(9, DATE, types.DocumentAttributeSticker("🙂", types.InputStickerSetEmpty()),
                     mime="image/webp"), ""),
        ({"checklist": {"title": "Plan 🇷🇺 today", "tasks": TASKS,
                        "title_entities": [{"offset": 5, "length": 4, "type": "bold"}]}},
         types.MessageMediaToDo(types.TodoList(
             types.TextWithEntities("Plan 🇷🇺 today", [types.MessageEntityBold(5, 4)]),
             [types.TodoItem(t["id"], types.TextWithEntities(t["text"], [])) for t in TASKS])),
         ""),
        ({"giveaway": {"chats": [BOT_CHAT], "winners_selection_date": 1727400000,
                       "winner_count": 3, "prize_description": "Three signed books"}},
         types.MessageMediaGiveaway([BARE], 3, tl.when(1727400000),
                                    prize_description="Three signed books"), ""),
        ({"caption": "A 🇺🇳 photo #UNGA79", "photo": [{"file_id": "p", "file_unique_id": "q",
                                                      "width": 90, "height": 60}],
          "caption_entities": [{"offset": 11, "length": 7, "type": "hashtag"}]},
         tl.photo(10, DATE), "A 🇺🇳 photo #UNGA79"),
    ],
)  # fmt: skip
def test_what_media_shows_in_words_agrees_with_the_bot_api_parser(
    bot_fields: dict[str, Any], media: Any, text: str
) -> None:
    raw = {"message_id": 90, "chat": BOT_CHAT, "date": int(DATE.timestamp()), **bot_fields}
    expected = parse_update({"update_id": 1, "channel_post": raw})
    assert expected is not None
    entities = []
    if "caption_entities" in bot_fields:
        entities = [tl.entity(e) for e in bot_fields["caption_entities"]]
    post = post_of(tl.message(BARE, 90, DATE, text, media=media, entities=entities))
    assert (post.text, post.parts, post.entities, post.media) == (
        expected.text,
        expected.parts,
        expected.entities,
        expected.media,
    )
    assert post.text  # every one of them has words to match
