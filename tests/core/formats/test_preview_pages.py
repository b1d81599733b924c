"""Preview pages as saved by people: re-wrapped markup, signatures, custom emoji, private forwards,
unsupported and service blocks, trimmed pages without data-post."""

from __future__ import annotations

import re
from pathlib import Path

from service.core.formats.preview import parse_preview
from tests.core.formats.test_preview import NOT_SUPPORTED, block, one, text_div, wrap_page


def _rewrap(markup: str) -> str:
    """What an editor's "format document" does: break long lines where a browser sees no
    difference (inside tags, at spaces between words, around block elements) and indent."""
    wrapped = re.sub(r">(?=<)", "\n      >", markup)
    wrapped = re.sub(r"(<br/>)", "\n      \\1\n      ", wrapped)
    return re.sub(r"(\w) (\w)", "\\1\n        \\2", wrapped)


def test_a_re_wrapped_saved_page_reads_as_the_original(fixtures_dir: Path) -> None:
    source = (fixtures_dir / "mfa_russia_preview.html").read_text(encoding="utf-8")
    original = {post.message_id: post for post in parse_preview(source).posts}
    rewrapped = {post.message_id: post for post in parse_preview(_rewrap(source)).posts}
    assert rewrapped.keys() == original.keys()
    for message_id, post in original.items():
        again = rewrapped[message_id]
        assert again.text == post.text, message_id
        assert again.content_hash == post.content_hash
        assert [(e.type, e.text) for e in again.entities] == [
            (e.type, e.text) for e in post.entities
        ]


def test_pre_blocks_keep_their_line_breaks() -> None:
    post = one(block("chan/1", text_div("run:\n<pre>a = 1\n  b = 2</pre>")))
    assert post.text == "run: a = 1\n  b = 2"
    assert [(e.type, e.text) for e in post.entities] == [("pre", "a = 1\n  b = 2")]


def test_signature_custom_emoji_and_private_forward_origin() -> None:
    body = (
        '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from&nbsp;'
        '<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/c/1101806611/77">'
        '<span dir="auto">Closed Channel</span></a></div>'
        + text_div('<tg-emoji emoji-id="5368324170671202286"><i class="emoji"><b>👍</b></i>'
                   "</tg-emoji> agreed")
        + '<span class="tgme_widget_message_from_author" dir="auto">Maria Z.</span>'
    )  # fmt: skip
    post = one(block("chan/5", body))
    assert post.author == "Maria Z."
    assert post.text == "👍 agreed"
    (emoji,) = post.entities
    assert (emoji.type, emoji.text, emoji.custom_emoji_id) == (
        "custom_emoji",
        "👍",
        "5368324170671202286",
    )
    assert post.forward is not None
    assert (post.forward.title, post.forward.channel_id, post.forward.message_id) == (
        "Closed Channel",
        -1001101806611,
        77,
    )


def test_blocks_with_nothing_to_read_are_skipped_by_shape() -> None:
    parsed = parse_preview(
        wrap_page(
            block("chan/1", NOT_SUPPORTED),
            block("chan/2", '<div class="tgme_widget_message_service_icon"></div>'),
            block("chan/3", text_div("a post")),
        )
    )
    assert [post.message_id for post in parsed.posts] == [3]
    assert parsed.skipped == {"unsupported": 1, "service": 1}


def test_poll_block_reads_question_then_options() -> None:
    poll = (
        '<div class="tgme_widget_message_poll"><div class="tgme_widget_message_poll_question">'
        'Where next?</div><div class="tgme_widget_message_poll_options">'
        + "".join(
            '<div class="tgme_widget_message_poll_option"><div class='
            f'"tgme_widget_message_poll_option_text">{option}</div></div>'
            for option in ("Kazan", "Geneva")
        )
        + "</div></div>"
    )
    post = one(block("chan/9", poll))
    assert (post.media, post.text) == ("poll", "Where next?\nKazan\nGeneva")
    assert post.part_texts("option") == ["Kazan", "Geneva"]


def test_album_block_carries_the_smallest_item_id() -> None:
    items = "".join(
        f'<a class="tgme_widget_message_video_player grouped_media_wrap" '
        f'href="https://t.me/chan/{n}?single"></a>'
        for n in (41, 40, 42)
    )
    body = f'<div class="tgme_widget_message_grouped_wrap"><div>{items}</div></div>' + text_div(
        "caption of the second item"
    )
    post = one(block("chan/41", body))
    assert (post.message_id, post.album_items, post.media) == (40, (40, 41, 42), "video")


def test_a_trimmed_block_without_data_post_is_read_from_its_date_link() -> None:
    trimmed = (
        '<div class="tgme_widget_message"><a class="tgme_widget_message_date" '
        'href="https://t.me/testchannel/101"><time datetime="2025-04-01T10:00:00+00:00">10:00'
        "</time></a>" + text_div("first post") + "</div>"
    )
    parsed = parse_preview(wrap_page(trimmed))
    assert [(p.channel, p.message_id, p.text) for p in parsed.posts] == [
        ("testchannel", 101, "first post")
    ]
