"""t.me/s preview pages → posts: markup to text and entities, views, paging, albums, rejects."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from service.core.formats.preview import PreviewPage, parse_preview, parse_views
from service.core.formats.result import FormatError
from service.core.post import Post

HIDDEN_LABELS = ("Please open Telegram", "VIEW IN TELEGRAM", "Media is too big")
_EMOJI_RUN = re.compile("[\U0001f000-\U0001ffff\u2600-\u27bf\ufe0f\u20e3]+")


@pytest.fixture
def page(fixtures_dir: Path) -> PreviewPage:
    return parse_preview((fixtures_dir / "mfa_russia_preview.html").read_text(), source_name="p")


@pytest.fixture
def posts(page: PreviewPage) -> dict[int, Post]:
    return {post.message_id: post for post in page.posts}


def _emoji(text: str) -> str:
    """Escape text and wrap emoji runs the way t.me does (<i class="emoji"><b>…</b></i>)."""
    return _EMOJI_RUN.sub(
        lambda m: f'<i class="emoji" style="background-image:url(\'x.png\')"><b>{m[0]}</b></i>',
        html.escape(text, quote=True),
    ).replace("\n", "<br/>")


def render(text: str, hashtags: list[str]) -> str:
    """Preview markup for a text whose only entities are the given hashtags, in order."""
    out, rest = [], text
    for tag in hashtags:
        before, _, rest = rest.partition(tag)
        out.append(_emoji(before))
        out.append(f'<a href="?q={quote(tag)}">{html.escape(tag)}</a>')
    out.append(_emoji(rest))
    return "".join(out)


def block(
    post: str,
    body: str = "",
    *,
    when: str = "2024-09-26T04:30:00+00:00",
    meta: str = "",
    classes: str = "",
    chat: int = -1001,
) -> str:
    view = base64.b64encode(json.dumps({"c": chat, "p": 1, "t": 1, "h": "x"}).encode()).decode()
    number = post.rsplit("/", 1)[-1]
    return (
        '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message text_not_supported_wrap js-widget_message {classes}"'
        f' data-post="{post}"'
        f' data-view="{view}"><div class="tgme_widget_message_bubble">'
        '<div class="tgme_widget_message_author accent_color">'
        '<a class="tgme_widget_message_owner_name" href="https://t.me/mfa_russia">'
        '<span dir="auto">Russian MFA</span></a></div>'
        f'{body}<div class="tgme_widget_message_footer compact js-message_footer">'
        '<div class="tgme_widget_message_info short js-message_info">'
        '<span class="tgme_widget_message_views">1.2K</span><span class="copyonly"> views</span>'
        f'<span class="tgme_widget_message_meta">{meta}<a class="tgme_widget_message_date"'
        f' href="https://t.me/{post}"><time datetime="{when}" class="time">04:30</time></a></span>'
        f"</div></div></div></div></div><!-- {number} -->"
    )


def text_div(inner: str) -> str:
    return f'<div class="tgme_widget_message_text js-message_text" dir="auto">{inner}</div>'


NOT_SUPPORTED = (
    '<div class="media_not_supported_cont"><div class="message_media_not_supported_wrap">'
    '<div class="message_media_not_supported"><div class="message_media_not_supported_label">'
    'Please open Telegram to view this post</div><a href="https://t.me/mfa_russia/1" '
    'class="message_media_view_in_telegram">VIEW IN TELEGRAM</a></div></div></div>'
)


def wrap_page(*blocks: str, head: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head>{head}</head><body><section class="
        f'"tgme_channel_history js-message_history">{"".join(blocks)}</section></body></html>'
    )


def one(markup: str) -> Post:
    parsed = parse_preview(wrap_page(markup))
    assert parsed.rejected == []
    (post,) = parsed.posts
    return post


# --- the fixture page ---------------------------------------------------------------------------


def test_fixture_page_channel_and_paging(page: PreviewPage) -> None:
    assert page.channel.username == "mfa_russia"
    assert page.channel.title == "Russian MFA 🇷🇺"
    # data-view "c": -1001 → bare id 1001 → -(10**12 + 1001), "-100" then the bare id
    assert page.channel.channel_id == -(10**12 + 1001)
    assert page.before == 1000
    assert page.after == 1008
    assert not page.no_messages
    assert page.rejected == []
    assert page.read == 9
    assert [post.message_id for post in page.posts] == list(range(1000, 1009))


def test_fixture_posts_basic_fields(posts: dict[int, Post]) -> None:
    for message_id, post in posts.items():
        assert post.channel == "mfa_russia"
        assert post.link == f"https://t.me/mfa_russia/{message_id}"
        assert post.channel_title == "Russian MFA 🇷🇺"
        assert post.source == "preview"
        assert post.views is not None
        assert post.date.tzinfo is not None
        assert not any(label in post.text for label in HIDDEN_LABELS)
        assert post.text == post.text.strip()
    assert posts[1002].date == datetime(2024, 9, 23, 15, 41, 5, tzinfo=UTC)
    assert posts[1002].views == 17900


@pytest.mark.parametrize(("message_id", "edited"), [(1003, True), (1008, True), (1002, False)])
def test_edited_marker(posts: dict[int, Post], message_id: int, edited: bool) -> None:
    assert posts[message_id].edited is edited
    assert posts[message_id].edit_date is None


def test_forward_has_title_username_and_id(posts: dict[int, Post]) -> None:
    forward = posts[1002].forward
    assert forward is not None
    assert (forward.title, forward.username, forward.message_id) == (
        "Russian Mission Geneva",
        "rusmission_geneva",
        3187,
    )
    assert posts[1000].forward is None


def test_emoji_are_kept_and_not_bold(posts: dict[int, Post]) -> None:
    assert posts[1008].text.startswith("🇷🇺🛬 Russia's Foreign Minister")
    assert "❗️ We will not take part" in posts[1001].text
    assert not any(e.text in ("🇷🇺", "🛬") for e in posts[1008].entities)


def test_message_1000_mentions_url_and_bold(posts: dict[int, Post]) -> None:
    post = posts[1000]
    assert [(e.type, e.text) for e in post.entities] == [
        ("bold", "News channels:"),
        ("mention", "@MID_Russia"),
        ("mention", "@MAERusia"),
        ("mention", "@MAErusse"),
        ("url", "x.com/mfa_russia"),
    ]
    assert all(post.text[e.offset : e.end] == e.text for e in post.entities)


def test_hidden_links_keep_their_href(posts: dict[int, Post]) -> None:
    links = [(e.text, e.url) for e in posts[1005].entities if e.type == "text_link"]
    assert links == [
        ("WATCH IN FULL", "https://www.youtube.com/@SABCNews"),
        ("READ IN FULL", "https://mid.ru/en/foreign_policy/news/"),
    ]


def test_hashtag_in_edited_1008(posts: dict[int, Post]) -> None:
    assert [(e.type, e.text) for e in posts[1008].entities] == [("hashtag", "#UNGA79")]


# --- synthetic blocks for what the fixture page does not show -----------------------------------


@pytest.fixture
def bot_texts(fixtures_dir: Path) -> dict[int, tuple[str, list[str]]]:
    """Final text and hashtags of each Bot API fixture post, to render as preview markup."""
    texts: dict[int, tuple[str, list[str]]] = {}
    for raw in json.loads((fixtures_dir / "mfa_russia_sample.json").read_text()):
        message: dict[str, Any] = raw.get("channel_post") or raw["edited_channel_post"]
        text = message.get("text") or message.get("caption")
        if text:
            encoded = text.encode("utf-16-le")
            tags = [
                encoded[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
                for e in message.get("entities") or message.get("caption_entities") or []
                if e["type"] == "hashtag"
            ]
            texts[message["message_id"]] = (text, tags)
    return texts


def test_album_block_is_one_post_with_single_ids(
    bot_texts: dict[int, tuple[str, list[str]]],
) -> None:
    text, tags = bot_texts[1011]
    items = "".join(
        f'<a class="tgme_widget_message_photo_wrap grouped_media_wrap blured js-message_photo"'
        f' data-single="1" href="https://t.me/mfa_russia/{n}?single" style="x"></a>'
        for n in (1011, 1012, 1013)
    )
    body = (
        '<div class="media_supported_cont"><div class="tgme_widget_message_grouped_wrap '
        f'js-message_grouped_wrap"><div class="tgme_widget_message_grouped">{items}</div></div>'
        f"{text_div(text_div(render(text, tags)))}</div>{NOT_SUPPORTED}"
    )
    post = one(block("mfa_russia/1011", body))
    assert post.message_id == 1011
    assert post.album_items == (1011, 1012, 1013)
    assert post.media == "photo"
    assert post.text == text
    assert [(e.type, e.text) for e in post.entities] == [("hashtag", tag) for tag in tags]


def test_too_big_video_label_is_not_text(bot_texts: dict[int, tuple[str, list[str]]]) -> None:
    text, tags = bot_texts[1019]
    body = (
        '<div class="media_supported_cont"><a class="tgme_widget_message_video_player blured '
        'js-message_video_player" href="https://t.me/mfa_russia/1019"><i class='
        '"tgme_widget_message_video_thumb" style="x"></i>'
        '<div class="message_media_not_supported_wrap">'
        '<div class="message_media_not_supported"><div class="message_media_not_supported_label">'
        'Media is too big</div><span class="message_media_view_in_telegram">VIEW IN TELEGRAM</span>'
        '</div></div><time class="message_video_duration js-message_video_duration">3:34</time></a>'
        f"{text_div(render(text, tags))}</div>{NOT_SUPPORTED}"
    )
    post = one(block("mfa_russia/1019", body))
    assert post.media == "video"
    assert post.text == text
    assert post.date == datetime(2024, 9, 26, 4, 30, tzinfo=UTC)


def test_reply_quote_is_not_the_body(bot_texts: dict[int, tuple[str, list[str]]]) -> None:
    text, tags = bot_texts[1020]
    body = (
        '<a class="tgme_widget_message_reply" href="https://t.me/mfa_russia/1019"><div class='
        '"tgme_widget_message_author accent_color"><span class="tgme_widget_message_author_name">'
        'Russian MFA</span></div><div class="tgme_widget_message_text js-message_reply_text" '
        f'dir="auto">#RussiaChina quoted line…</div></a>{text_div(render(text, tags))}'
    )
    post = one(block("mfa_russia/1020", body))
    assert post.reply_to == 1019
    assert post.text == text
    assert "quoted line" not in post.text


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ('<a href="?q=%23%D0%A0%D0%BE%D1%81%D1%81%D0%B8%D1%8F">#Россия</a>',
         [("hashtag", "#Россия", None)]),
        ('<a href="?q=%24BTC">$BTC</a>', [("cashtag", "$BTC", None)]),
        ('<a href="https://t.me/MID_Russia">@MID_Russia</a>', [("mention", "@MID_Russia", None)]),
        ('<a href="https://example.org/a?b=1&amp;amp;c=2" target="_blank" rel="noopener" '
         "onclick=\"return confirm('Open this link?\\n\\n'+this.href);\">here</a>",
         [("text_link", "here", "https://example.org/a?b=1&c=2")]),
        ('<a href="https://mid.ru/en/" target="_blank" rel="noopener">https://mid.ru/en/</a>',
         [("url", "https://mid.ru/en/", None)]),
        ('<a href="https://t.me/somechannel/5">this post</a>',
         [("text_link", "this post", "https://t.me/somechannel/5")]),
        ('<a href="mailto:a@b.org">a@b.org</a>', [("email", "a@b.org", None)]),
        ("<b>bold <i>both</i></b> <s>gone</s> <code>x=1</code>",
         [("bold", "bold both", None), ("italic", "both", None),
          ("strikethrough", "gone", None), ("code", "x=1", None)]),
        ('<blockquote expandable>long</blockquote>', [("expandable_blockquote", "long", None)]),
        ('<tg-spoiler>secret</tg-spoiler>', [("spoiler", "secret", None)]),
    ],
)  # fmt: skip
def test_entities_from_markup(inner: str, expected: list[tuple[str, str, str | None]]) -> None:
    post = one(block("chan/1", text_div(f"<i class='emoji'><b>☝🏻</b></i> {inner} 3⃣")))
    assert [(e.type, e.text, e.url) for e in post.entities] == expected
    assert all(post.text[e.offset : e.end] == e.text for e in post.entities)
    assert post.text.startswith("☝🏻 ")
    assert post.text.endswith(" 3⃣")


def test_text_is_unescaped_and_trimmed() -> None:
    post = one(block("chan/1", text_div("\n  Russia&#39;s &quot;view&quot; &amp; <b>more</b>  \n")))
    assert post.text == 'Russia\'s "view" & more'
    assert [(e.type, e.text) for e in post.entities] == [("bold", "more")]


@pytest.mark.parametrize(
    ("marker", "media"),
    [
        ('<div class="tgme_widget_message_document_wrap"><div class="tgme_widget_message_document">'
         "</div></div>", "document"),
        ('<a class="tgme_widget_message_voice_player"><audio class="tgme_widget_message_voice">'
         "</audio></a>", "voice"),
        ('<div class="tgme_widget_message_poll"></div>', "poll"),
        ('<div class="tgme_widget_message_sticker_wrap"><i class="tgme_widget_message_sticker">'
         "</i></div>", "sticker"),
        ('<a class="tgme_widget_message_location_wrap" href="x"></a>', "location"),
        ('<a class="tgme_widget_message_photo_wrap" href="x" style="y"></a>', "photo"),
        ("", None),
    ],
)  # fmt: skip
def test_media_kinds(marker: str, media: str | None) -> None:
    assert one(block("chan/1", marker + text_div("caption"))).media == media


def test_forward_without_public_link_has_title_only() -> None:
    body = (
        '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from&nbsp;'
        '<span class="tgme_widget_message_forwarded_from_name">Private Group</span></div>'
    )
    forward = one(block("chan/1", body + text_div("x"))).forward
    assert forward is not None
    assert (forward.title, forward.username, forward.message_id) == ("Private Group", None, None)


def test_service_messages_are_skipped() -> None:
    parsed = parse_preview(
        wrap_page(block("chan/1", text_div("Channel created"), classes="service_message"))
    )
    assert parsed.posts == []
    assert parsed.rejected == []
    assert parsed.read == 1


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (block("chan/2", text_div("no date")).replace("<time datetime", "<time data-x"), "time"),
        (block("chan/2", text_div("bad date"), when="yesterday"), "ISO"),
        (
            block("chan/2", text_div("no id"))
            .replace('data-post="chan/2"', "")
            .replace("https://t.me/chan/2", "https://t.me/chan"),
            "data-post",
        ),
    ],
)
def test_malformed_block_is_rejected_and_the_rest_parses(broken: str, reason: str) -> None:
    parsed = parse_preview(
        wrap_page(block("chan/1", text_div("a")), broken, block("chan/3", text_div("b"))),
        source_name="page.html",
    )
    assert [post.message_id for post in parsed.posts] == [1, 3]
    (rejected,) = parsed.rejected
    assert (rejected.source, rejected.index) == ("page.html", 1)
    assert reason in rejected.reason
    assert "tgme_widget_message" in rejected.raw


def test_end_of_history_page() -> None:
    parsed = parse_preview(
        wrap_page('<div class="tme_no_messages_found">No posts found</div>'),
    )
    assert parsed.no_messages
    assert parsed.posts == []
    assert parsed.before is None


def test_cursor_from_more_link_when_head_has_none() -> None:
    more = (
        '<div class="tgme_widget_message_centered js-messages_more_wrap">'
        '<a href="/s/chan?before=40" class="tme_messages_more js-messages_more"'
        ' data-before="40"></a></div>'
    )
    parsed = parse_preview(wrap_page(more, block("chan/40", text_div("x"))))
    assert (parsed.before, parsed.after) == (40, None)
    assert parse_preview(wrap_page(block("chan/1", text_div("x")))).before is None


def test_username_keeps_canonical_case_from_data_post() -> None:
    parsed = parse_preview(wrap_page(block("MID_Russia/7", text_div("x"), chat=-42)))
    assert parsed.channel.username == "MID_Russia"
    assert parsed.channel.channel_id == -(10**12 + 42)
    assert parsed.posts[0].link == "https://t.me/MID_Russia/7"


@pytest.mark.parametrize(
    ("shown", "views"),
    [("17.9K", 17900), ("1.38K", 1380), ("2M", 2000000), ("950", 950), ("1.2B", 1200000000),
     ("53.7k", 53700), ("", None), ("many", None)],
)  # fmt: skip
def test_parse_views(shown: str, views: int | None) -> None:
    assert parse_views(shown) == views


@pytest.mark.parametrize(
    "garbage",
    ["", "just some text", "<html><body><p>Hello</p></body></html>", '{"update_id": 1}'],
)
def test_garbage_is_a_format_error(garbage: str) -> None:
    with pytest.raises(FormatError, match=r"not a t\.me/s preview page"):
        parse_preview(garbage)


def test_absurd_numbers_are_rejected_or_ignored_not_raised() -> None:
    huge = "9" * 5000
    head = f'<link rel="prev" href="/s/chan?before={huge}">'
    forward = (
        '<div class="tgme_widget_message_forwarded_from">Forwarded from&nbsp;<a class='
        f'"tgme_widget_message_forwarded_from_name" href="https://t.me/other/{huge}">O</a></div>'
    )
    parsed = parse_preview(
        wrap_page(block("chan/1", text_div("a")), block("chan/2", forward), head=head)
    )
    assert parsed.before is None
    assert [post.message_id for post in parsed.posts] == [1]
    # The unusable link is not followed: the block keeps the origin's title and, having
    # nothing to read, is counted as skipped.
    assert (parsed.rejected, parsed.skipped) == ([], {"service": 1})
    huge_id = parse_preview(wrap_page(block(f"chan/{huge[:40]}", text_div("x"))))
    assert (huge_id.posts, len(huge_id.rejected)) == ([], 1)


def test_deeply_nested_markup_does_not_exhaust_recursion() -> None:
    depth = 5000
    post = one(block("chan/1", text_div("<span>" * depth + "deep" + "</span>" * depth)))
    assert post.text == "deep"
