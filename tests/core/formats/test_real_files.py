"""Real files from public repositories (see tests/fixtures/real/SOURCES.md) become the right posts.

Per file: the number of posts, nothing set aside that is not broken, no message that carries
text, a caption or a poll lost, and spot checks of texts, entities, albums, forwards, authors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from service.core.formats.botapi import classify_update
from service.core.formats.detect import parse_file
from service.core.formats.result import FormatError
from service.core.post import Post

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real"
NUTGRAM = REAL / "botapi" / "nutgram"

# nutgram fixture -> (media kind, readable text) when re-keyed as a channel post; None: service.
NUTGRAM_KINDS: dict[str, tuple[str | None, str] | None] = {
    "animation": ("animation", ""),
    "checklist": ("checklist", "Daily Tasks\nApples\nBananas\nOranges"),
    "contact": ("contact", ""),
    "dice": ("dice", ""),
    "document": ("document", ""),
    "entities": (None, "test bold underline 😆👍 look here"),
    "game": ("game", ""),
    "giveaway": ("giveaway", ""),
    "giveaway_winners": ("giveaway_winners", ""),
    "invoice": ("invoice", ""),
    "location": ("location", ""),
    "message_forward_origin": (None, "Ciao"),
    "message_poll": ("poll", "What's your favorite color?\nRed\nBlue"),
    "message_topic": (None, "lòklò"),
    "photo": ("photo", "asdasdasdasdasdasd"),
    "sticker": ("sticker", "🤣"),
    "story": ("story", ""),
    "text": (None, "aaaaaaaaaa"),
    "venue": ("venue", ""),
    "video": ("video", ""),
    "voice": ("voice", ""),
    "chat_owner_changed": None,
    "checklist_tasks_added": None,
    "checklist_tasks_done": None,
    "delete_chat_photo": None,
    "direct_message_price_changed": None,
    "forum_topic_created": None,
    "giveaway_completed": None,
    "giveaway_created": None,
    "message_auto_delete_timer_changed": None,
    "message_boost_added": None,
    "new_chat_photo": None,
    "new_chat_title": None,
    "pinned_message": None,
    "refunded_payment": None,
    "successful_payment": None,
    "video_chat_ended": None,
    "video_chat_started": None,
}


def _readable(message: dict[str, Any]) -> str | None:
    """What a person reads in a Bot API message, told independently of the parser: its text or
    caption, else a poll's question (None when it carries none of these)."""
    for key in ("text", "caption"):
        if isinstance(message.get(key), str) and message[key]:
            return str(message[key])
    poll = message.get("poll")
    if isinstance(poll, dict) and poll.get("question"):
        return str(poll["question"])
    return None


def _as_channel_post(update: dict[str, Any]) -> dict[str, Any]:
    """The update's message, untouched, delivered as a channel post of a channel chat."""
    kind = next(key for key in ("message", "edited_message", "channel_post") if key in update)
    message = copy.deepcopy(update[kind])
    message["chat"] = {"id": -1001234567890, "title": "Re-keyed", "type": "channel"}
    return {"update_id": update["update_id"], "channel_post": message}


def _updates(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def test_sources_list_every_file() -> None:
    sources = (REAL / "SOURCES.md").read_text(encoding="utf-8")
    files = [p for p in REAL.rglob("*") if p.is_file() and p.name != "SOURCES.md"]
    assert len(files) >= 15
    for path in files:
        listed = path.relative_to(REAL).as_posix()
        assert listed in sources or f"{path.parent.relative_to(REAL).as_posix()}/*" in sources
    assert set(NUTGRAM_KINDS) == {path.stem for path in NUTGRAM.glob("*.json")} - {
        "channel_post", "edited_channel_post", "poll", "message_reaction_count",
        "paid_media_purchased",
    }  # fmt: skip


@pytest.mark.parametrize("path", sorted(REAL.glob("botapi/**/*.json*")), ids=lambda p: p.name)
def test_bot_api_files_lose_no_channel_post_and_reject_nothing(path: Path) -> None:
    updates = _updates(path)
    result = parse_file(path)
    assert result.rejected == []
    assert result.read == len(updates)
    readable = [
        (update[kind]["message_id"], text)
        for update in updates
        for kind in ("channel_post", "edited_channel_post")
        if kind in update and (text := _readable(update[kind])) is not None
    ]
    for message_id, text in readable:
        assert any(p.message_id == message_id and text in p.text for p in result.posts), text
    assert all(post.text or post.media for post in result.posts)  # never a blank, bare post
    counted = len(result.posts) + sum(result.skipped.values())
    assert counted == len(updates)


@pytest.mark.parametrize("name", sorted(NUTGRAM_KINDS))
def test_every_recorded_message_kind_as_a_channel_post(name: str) -> None:
    (update,) = _updates(NUTGRAM / f"{name}.json")
    outcome = classify_update(_as_channel_post(update))
    expected = NUTGRAM_KINDS[name]
    if expected is None:
        assert outcome == "service"
        return
    assert isinstance(outcome, Post)
    media, text = expected
    assert (outcome.media, outcome.text) == (media, text)
    readable = _readable(_as_channel_post(update)["channel_post"])
    assert readable is None or readable in outcome.text


def test_nutgram_spot_checks() -> None:
    def post(name: str) -> Post:
        (update,) = _updates(NUTGRAM / f"{name}.json")
        outcome = classify_update(_as_channel_post(update))
        assert isinstance(outcome, Post)
        return outcome

    checklist = post("checklist")
    assert checklist.part_texts("title") == ["Daily Tasks"]
    assert checklist.part_texts("item") == ["Apples", "Bananas", "Oranges"]
    poll = post("message_poll")
    assert [part.kind for part in poll.parts] == ["question", "option", "option"]
    assert post("sticker").part_texts("emoji") == ["🤣"]
    entities = post("entities")
    assert [(e.type, e.text, e.url) for e in entities.entities] == [
        ("bold", "bold", None),
        ("underline", "underline", None),
        ("text_link", "look here", "http://google.it/"),
        ("bold", "here", None),
    ]
    forward = post("message_forward_origin").forward
    assert forward is not None and (forward.title, forward.username) == ("Stickers", "Stickers")
    (channel_post,) = parse_file(NUTGRAM / "channel_post.json").posts
    (edited,) = parse_file(NUTGRAM / "edited_channel_post.json").posts
    assert (channel_post.text, channel_post.edited, edited.edited) == ("Ciao", False, True)
    assert channel_post.key == edited.key


def test_teloxide_channel_notices_are_skipped_and_giveaways_kept() -> None:
    result = parse_file(REAL / "botapi" / "teloxide_channel_messages.json")
    assert [(p.message_id, p.media) for p in result.posts] == [
        (27, "giveaway"),
        (28, "giveaway_winners"),
    ]
    assert result.skipped == {"service": 11}
    assert all(post.channel == "c/2236736395" for post in result.posts)


def test_bot_api_documented_examples_as_channel_posts() -> None:
    updates = _updates(REAL / "botapi" / "telegram_webhooks_examples.jsonl")
    assert parse_file(REAL / "botapi" / "telegram_webhooks_examples.jsonl").posts == []
    posts = [
        outcome
        for update in updates
        if "message" in update or "edited_message" in update
        if isinstance(outcome := classify_update(_as_channel_post(update)), Post)
    ]
    assert [(p.text, p.media) for p in posts] == [
        ("/start", None), ("/start", None), ("/start", None), ("/start", None),
        ("/start", None), ("Edited text", None), ("Bold and italics", None),
        ("", "audio"), ("", "voice"), ("", "document"),
    ]  # fmt: skip
    assert [(e.type, e.text) for e in posts[6].entities] == [
        ("italic", "italics"),
        ("bold", "Bold"),
    ]
    assert posts[2].forward is not None and posts[4].reply_to == 1334
    assert posts[5].edit_date is not None


def test_saved_preview_page_of_a_real_channel() -> None:
    path = REAL / "preview" / "durov_sherlock_channel_feed.html"
    html = path.read_text(encoding="utf-8")
    result = parse_file(path)
    assert (result.read, len(result.posts), result.rejected) == (20, 20, [])
    posts = {post.message_id: post for post in result.posts}
    assert html.count('class="tgme_widget_message_text js-message_text"') == 19
    assert sum(bool(post.text) for post in posts.values()) == 19
    assert (posts[522].media, posts[522].text) == ("photo", "")
    assert {post.author for post in posts.values()} == {"Pavel Durov"}
    assert {post.channel_id for post in posts.values()} == {-1001006503122}
    first = posts[519]
    assert first.media == "video"
    assert first.text.startswith("🤖 Your Telegram inbox can now run itself.\n\n")
    emoji = [e for e in first.entities if e.type == "custom_emoji"]
    assert emoji and emoji[0].text == "🤖" and emoji[0].custom_emoji_id == "5345799227572257356"
    last = posts[539]
    links = [(e.text, e.url) for e in last.entities if e.type == "text_link"]
    assert links[0] == ("AI", "https://ioai-official.org/republic-of-kazakhstan/")
    assert "Well done! 💪" in last.text and "I'm equally happy" in last.text
    for post in posts.values():
        assert "Please open Telegram" not in post.text
        assert all(post.text[e.offset : e.end] == e.text for e in post.entities)
        assert post.views is not None and post.views > 0


def test_trimmed_exports_fail_clearly_or_skip_what_is_not_a_channel() -> None:
    with pytest.raises(FormatError, match="not of a channel"):
        parse_file(REAL / "export" / "chatminer_single_export.json")
    batch = parse_file(REAL / "export" / "chatminer_batch_export.json")
    assert (batch.posts, batch.rejected, batch.skipped) == ([], [], {"not_channel_post": 2})
