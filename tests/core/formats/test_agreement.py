"""The three formats agree on the same posts, and every parsed post survives its JSON form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.formats.botapi import parse_updates
from service.core.formats.detect import parse_file
from service.core.formats.export import parse_export
from service.core.formats.preview import parse_preview
from service.core.post import Entity, Post

DETECTED = ("hashtag", "mention", "url")
HIDDEN_LABELS = ("Please open Telegram", "VIEW IN TELEGRAM", "Media is too big")


def _latest(posts: list[Post]) -> dict[int, Post]:
    """The final version of each post (the export and preview only know that one)."""
    return {post.message_id: post for post in posts}


@pytest.fixture
def botapi(fixtures_dir: Path) -> dict[int, Post]:
    data = json.loads((fixtures_dir / "mfa_russia_sample.json").read_text())
    return _latest(parse_updates(data).posts)


@pytest.fixture
def export(fixtures_dir: Path) -> dict[int, Post]:
    data = json.loads((fixtures_dir / "mfa_russia_export.json").read_text())
    return _latest(parse_export(data, channel="mfa_russia").posts)


@pytest.fixture
def preview(fixtures_dir: Path) -> dict[int, Post]:
    posts: list[Post] = []
    for page in ("mfa_russia_preview.html", "mfa_russia_preview_2.html"):
        posts.extend(parse_preview((fixtures_dir / page).read_text()).posts)
    return _latest(posts)


def _kept_by_exporter(entities: tuple[Entity, ...]) -> tuple[Entity, ...]:
    """Entities the Desktop exporter keeps: one that starts before the previous ends is dropped."""
    kept: list[Entity] = []
    for entity in entities:
        if kept and entity.offset < kept[-1].end:
            continue
        kept.append(entity)
    return tuple(kept)


def _detected(entities: tuple[Entity, ...]) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in entities if e.type in DETECTED]


def test_same_message_ids(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    assert set(export) == set(botapi)
    assert set(preview) <= set(botapi)
    assert len(preview) == 11


def test_final_texts_agree(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    for message_id, post in botapi.items():
        assert export[message_id].text == post.text, message_id
        if message_id in preview:
            assert preview[message_id].text == post.text, message_id


def test_detected_entities_agree(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    for message_id, post in botapi.items():
        exported = _detected(export[message_id].entities)
        assert exported == _detected(_kept_by_exporter(post.entities)), message_id
        if message_id in preview:
            assert _detected(preview[message_id].entities) == _detected(post.entities), message_id


def test_export_loses_only_nested_entities(
    botapi: dict[int, Post], export: dict[int, Post]
) -> None:
    lost = {
        (message_id, entity.type, entity.text)
        for message_id, post in botapi.items()
        for entity in post.entities
        if entity not in export[message_id].entities
    }
    assert lost == {(1015, "hashtag", "#LIVE")}


def test_text_link_targets_agree(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    def links(post: Post) -> list[tuple[str, str | None]]:
        return [(e.text, e.url) for e in post.entities if e.type == "text_link"]

    assert any(links(post) for post in botapi.values())
    for message_id, post in botapi.items():
        assert links(export[message_id]) == links(post)
        if message_id in preview:
            assert links(preview[message_id]) == links(post)


def test_metadata_agrees(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    for message_id, post in botapi.items():
        others = [export[message_id]] + ([preview[message_id]] if message_id in preview else [])
        for other in others:
            assert other.date == post.date
            assert other.edited == post.edited
            assert other.reply_to == post.reply_to
            assert other.album_items == post.album_items
            assert other.channel == post.channel
            assert (other.forward is None) == (post.forward is None)
            if post.forward is not None and other.forward is not None:
                assert other.forward.title == post.forward.title
            assert other.parts == post.parts
            assert other.author == post.author
        assert export[message_id].media == post.media
        assert export[message_id].edit_date == post.edit_date
        if message_id in preview and post.forward is not None:
            forward = preview[message_id].forward
            assert forward is not None
            assert forward.link == post.forward.link


def test_poll_album_and_media_kinds_agree(
    botapi: dict[int, Post], export: dict[int, Post], preview: dict[int, Post]
) -> None:
    (poll,) = [message_id for message_id, post in botapi.items() if post.media == "poll"]
    late_album = next(message_id for message_id, post in botapi.items() if 1024 in post.album_items)
    for message_id in (poll, late_album):
        for other in (export[message_id], preview[message_id]):
            assert other.text == botapi[message_id].text
            assert other.media == botapi[message_id].media
            assert other.album_items == botapi[message_id].album_items
    assert [part.kind for part in botapi[poll].parts] == ["question", "option", "option", "option"]


@pytest.mark.parametrize(
    "name",
    [
        "mfa_russia_sample.json",
        "mfa_russia_export.json",
        "mfa_russia_preview.html",
        "mfa_russia_preview_2.html",
        "mfa_russia_export_2021.json",
    ],
)
def test_every_post_round_trips_and_hides_nothing(fixtures_dir: Path, name: str) -> None:
    posts = parse_file(fixtures_dir / name).posts
    assert posts
    for post in posts:
        data = json.loads(json.dumps(post.to_dict()))
        assert Post.from_dict(data) == post
        assert not any(label in post.text for label in HIDDEN_LABELS)
        assert all(post.text[e.offset : e.end] == e.text for e in post.entities)
        if post.source != "export":
            assert post.link == f"https://t.me/mfa_russia/{post.message_id}"
