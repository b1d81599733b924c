"""Rendering alerts: Telegram HTML (escaping, highlights, trimming, buttons), digest, payload."""

from __future__ import annotations

import html
from typing import Any

import pytest

from service import constants
from service.core.model import Alert, Highlight
from service.core.render import (
    excerpt_html,
    parse_callback_data,
    render_digest,
    render_telegram,
    utf16_len,
    webhook_payload,
)
from tests.fakes.botapi import check_html


def _post(text: str, **changes: Any) -> dict[str, Any]:
    post = {
        "channel": "mfa_russia",
        "channel_id": -1001234567890,
        "channel_title": "МИД России 🇷🇺",
        "message_id": 4242,
        "date": "2024-05-01T10:00:00+00:00",
        "edit_date": None,
        "edited": False,
        "text": text,
        "link": "https://t.me/mfa_russia/4242",
        "content_hash": "abc",
    }
    post.update(changes)
    return post


def _alert(text: str, spans: list[tuple[int, int]] = (), **changes: Any) -> Alert:  # type: ignore[assignment]
    highlights = tuple(Highlight(s, e, text[s:e]) for s, e in spans)
    post_changes = changes.pop("post", {})
    return Alert(subscription_id="lavrov", post=_post(text, **post_changes),
                 highlights=highlights, matched_at=1714557600.0, **changes)  # fmt: skip


def _visible(text: str) -> str:
    error, visible = check_html(text)
    assert error is None, error
    return visible


def test_alert_message_has_title_link_excerpt_name_and_buttons() -> None:
    text = "Сергей Лавров провёл переговоры в Москве."
    message = render_telegram(_alert(text, [(7, 13)]), subscription_name="Lavrov watch")
    assert "<b>МИД России 🇷🇺</b>" in message.text
    assert '<a href="https://t.me/mfa_russia/4242">t.me/mfa_russia/4242</a>' in message.text
    assert "Сергей <b>Лавров</b> провёл" in message.text
    visible = _visible(message.text)
    assert text in visible
    assert "🔔 Lavrov watch" in visible
    assert "also in" not in visible and "edited" not in visible
    assert message.reply_markup == {"inline_keyboard": [[
        {"text": "🔕 Mute 1 h", "callback_data": "mute:lavrov:3600"},
        {"text": "Unwatch", "callback_data": "unwatch:lavrov"},
    ]]}  # fmt: skip
    assert parse_callback_data("mute:lavrov:3600") == ("mute", "lavrov", "3600")


def test_also_in_and_edited_notes() -> None:
    alert = _alert("text", [(0, 4)], also_in=("a/1", "b/2"), edited_now_matches=True)
    visible = _visible(render_telegram(alert).text)
    assert "also in 2 channels" in visible
    assert "edited: now matches" in visible
    assert "🔔 lavrov" in visible  # no name given: the subscription id
    one = _visible(render_telegram(_alert("text", also_in=("a/1",))).text)
    assert "also in 1 channel" in one and "channels" not in one


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("a < b && c > d", (4, 8)),  # the highlight holds escapes
        ("<b>not a tag</b> & 'quotes' \"too\"", (3, 12)),
        ("&amp; is already escaped text", (0, 5)),
        ("tail highlight <i>", (15, 18)),
    ],
)
def test_every_piece_is_escaped_and_highlights_use_original_offsets(
    text: str, span: tuple[int, int]
) -> None:
    alert = _alert(text, [span], post={"channel_title": "<script>&</script>"})
    message = render_telegram(alert, subscription_name="a<b>&c")
    visible = _visible(message.text)
    assert text in visible
    assert "<script>&</script>" in visible and "a<b>&c" in visible
    start, end = span
    assert f"<b>{html.escape(text[start:end])}</b>" in message.text


def test_link_with_quotes_and_ampersands_is_escaped_in_the_attribute() -> None:
    alert = _alert("x", post={"link": 'https://t.me/c/1?a=1&b="2"'})
    message = render_telegram(alert)
    assert 'href="https://t.me/c/1?a=1&amp;b=&quot;2&quot;"' in message.text
    _visible(message.text)


def test_long_post_is_trimmed_around_the_first_highlight() -> None:
    text = ("слово " * 2000) + "Лавров заявил" + (" и ещё" * 500)
    start = text.index("Лавров")
    message = render_telegram(_alert(text, [(start, start + 6)]))
    visible = _visible(message.text)
    assert "<b>Лавров</b>" in message.text
    excerpt_line = visible.split("\n\n")[1]
    assert excerpt_line.startswith("…") and excerpt_line.endswith("…")
    assert utf16_len(excerpt_line) <= constants.TELEGRAM_EXCERPT_CHARS
    # Trimmed at spaces, not inside a word.
    assert excerpt_line[1:].startswith("слово")
    assert excerpt_line[:-1].rstrip().endswith(("ещё", "и"))


@pytest.mark.parametrize("filler", ["&", "<", "a", "😀", "a😀&"])
def test_never_more_than_4096_and_never_cut_inside_an_escape(filler: str) -> None:
    text = filler * 6000
    middle = len(text) // 2
    alert = _alert(text, [(middle, middle + 3), (middle + 2, middle + 10), (9000, 9999999)],
                   also_in=("x/1",), edited_now_matches=True)  # fmt: skip
    message = render_telegram(alert, subscription_name="n" * 500, excerpt_chars=10_000)
    visible = _visible(message.text)
    assert utf16_len(visible) <= constants.TELEGRAM_MESSAGE_LIMIT
    assert utf16_len(visible) >= constants.TELEGRAM_MESSAGE_LIMIT - 40  # the room is used
    assert message.text.count("<b>") == message.text.count("</b>")


def test_excerpt_merges_overlaps_and_ignores_bad_spans() -> None:
    text = "one two three four"
    highlights = [Highlight(4, 7, "two"), Highlight(6, 13, "o three"), Highlight(20, 25, "?"),
                  Highlight(5, 5, "")]  # fmt: skip
    body, length = excerpt_html(text, highlights, 100)
    assert body == "one <b>two three</b> four"
    assert length == len(text)
    assert excerpt_html(text, highlights, 0) == ("", 0)


def test_post_without_text_still_renders() -> None:
    visible = _visible(render_telegram(_alert("")).text)
    assert "(no text)" in visible


def test_long_subscription_id_drops_buttons_rather_than_truncating_them() -> None:
    alert = Alert(subscription_id="x" * 70, post=_post("t"))
    assert render_telegram(alert).reply_markup is None


def test_digest_fits_and_counts_the_rest() -> None:
    items = [(_alert(f"пост номер {i} " + "текст " * 300, [(0, 4)],
                     post={"message_id": i, "link": f"https://t.me/mfa_russia/{i}"}), "Name")
             for i in range(60)]  # fmt: skip
    message = render_digest(items)
    visible = _visible(message.text)
    assert visible.startswith("🗞 Digest: 60 alerts")
    assert utf16_len(visible) <= constants.TELEGRAM_MESSAGE_LIMIT
    shown = message.text.count('<a href="https://t.me/mfa_russia/')
    assert 0 < shown < 60
    assert f"… and {60 - shown} more" in visible


def test_webhook_payload_v1() -> None:
    text = "Лавров & Co"
    alert = _alert(text, [(0, 6)], also_in=("other/1",), edited_now_matches=True,
                   enrichment={"lang": "ru", "topics": [{"id": "diplomacy", "score": 0.9}],
                               "entities": [{"type": "PER", "text": "Лавров", "canonical": "лавров",
                                             "start": 0, "end": 6, "id": "lavrov"}]},
                   post={"edited": True, "edit_date": "2024-05-01T11:00:00+00:00"})  # fmt: skip
    payload = webhook_payload(alert, subscription_name="Lavrov watch")
    assert payload == {
        "schema": "tgwatch.alert.v1",
        "id": alert.id,
        "subscription": {"id": "lavrov", "name": "Lavrov watch"},
        "channel": {"username": "mfa_russia", "id": -1001234567890, "title": "МИД России 🇷🇺"},
        "post": {
            "message_id": 4242,
            "link": "https://t.me/mfa_russia/4242",
            "date": "2024-05-01T10:00:00+00:00",
            "edit_date": "2024-05-01T11:00:00+00:00",
            "edited": True,
            "text": text,
        },
        "highlights": [{"start": 0, "end": 6, "text": "Лавров"}],
        "topics": [{"id": "diplomacy", "score": 0.9}],
        "entities": [{"type": "PER", "text": "Лавров", "canonical": "лавров", "start": 0,
                      "end": 6, "id": "lavrov"}],
        "lang": "ru",
        "matched_at": "2024-05-01T10:00:00+00:00",
        "edited_now_matches": True,
        "also_in": ["other/1"],
    }  # fmt: skip
