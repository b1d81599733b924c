"""Render an alert: the Telegram HTML message (with its buttons), a digest, the webhook payload.

Pure functions over plain data. Every piece of text is HTML-escaped after it is cut, and
highlights are applied on the post's original text offsets, so a trim never lands inside a tag
or an escape. Lengths are counted in UTF-16 code units, as Telegram counts them, which is never
less than the character count.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service import constants
from service.core.model import Alert, Highlight

ELLIPSIS = "…"
# Channel titles and subscription names are cut to this many characters in a message.
NAME_MAX_CHARS = 200
# Each item of a digest shows this much of its post.
DIGEST_EXCERPT_CHARS = 200
# How far a trimmed excerpt may move its cut to land on a space instead of inside a word.
_SNAP_CHARS = 30

CALLBACK_MUTE = "mute"
CALLBACK_UNWATCH = "unwatch"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: characters outside the BMP take two units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + ELLIPSIS


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


@dataclass(frozen=True, slots=True)
class TelegramMessage:
    """A message ready for sendMessage with ``parse_mode=HTML``; ``reply_markup`` is the Bot
    API's JSON form (``{"inline_keyboard": [[{"text", "callback_data"}, ...]]}``) or None."""

    text: str
    reply_markup: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "reply_markup": self.reply_markup}


# --- excerpt ------------------------------------------------------------------------------------
def _clean_highlights(highlights: Sequence[Highlight], length: int) -> list[tuple[int, int]]:
    """Valid spans, sorted, overlapping or touching ones merged."""
    spans = sorted((h.start, h.end) for h in highlights if 0 <= h.start < h.end <= length)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _window(text: str, spans: list[tuple[int, int]], budget: int) -> tuple[int, int]:
    """[start, end) of ``text`` to show within ``budget`` units, ellipses included, keeping the
    first highlight in view with some context before it."""
    if utf16_len(text) <= budget:
        return 0, len(text)
    anchor = spans[0] if spans else (0, 0)

    def place(size: int) -> tuple[int, int, int]:
        start = max(0, anchor[0] - size // 4)
        end = min(len(text), start + size)
        start = max(0, end - size)
        if start > 0:  # begin after a space when one is near and the highlight stays in view
            space = text.find(" ", start, min(start + _SNAP_CHARS, anchor[0]))
            if space != -1:
                start = space + 1
        if end < len(text):  # end before a space when one is near
            space = text.rfind(" ", max(end - _SNAP_CHARS, anchor[1], start + 1), end)
            if space != -1:
                end = space
        used = utf16_len(text[start:end]) + (start > 0) + (end < len(text))
        return start, end, used

    # The largest window (in characters) that fits: characters outside the BMP count twice.
    low, high = 0, max(budget - 2, 0)
    while low < high:
        size = (low + high + 1) // 2
        if place(size)[2] <= budget:
            low = size
        else:
            high = size - 1
    start, end, _ = place(low)
    return start, end


def excerpt_html(text: str, highlights: Sequence[Highlight], budget: int) -> tuple[str, int]:
    """The escaped excerpt with ``<b>`` highlights and its visible length (UTF-16 units)."""
    if budget <= 0 or not text:
        return "", 0
    spans = _clean_highlights(highlights, len(text))
    start, end = _window(text, spans, budget)
    parts: list[str] = [ELLIPSIS] if start > 0 else []
    position = start
    for span_start, span_end in spans:
        lo, hi = max(span_start, start), min(span_end, end)
        if lo >= hi:
            continue
        parts.append(_esc(text[position:lo]))
        parts.append(f"<b>{_esc(text[lo:hi])}</b>")
        position = hi
    parts.append(_esc(text[position:end]))
    if end < len(text):
        parts.append(ELLIPSIS)
    visible = utf16_len(text[start:end]) + (start > 0) + (end < len(text))
    return "".join(parts), visible


# --- buttons -----------------------------------------------------------------------------------
def callback_data(action: str, subscription_id: str, argument: str = "") -> str:
    """``action:subscription_id[:argument]`` — what the bot's callback handler parses."""
    return ":".join(part for part in (action, subscription_id, argument) if part)


def parse_callback_data(data: str) -> tuple[str, str, str]:
    """(action, subscription_id, argument) from ``callback_data``'s output."""
    action, _, rest = data.partition(":")
    subscription_id, _, argument = rest.partition(":")
    return action, subscription_id, argument


def alert_keyboard(subscription_id: str) -> dict[str, Any] | None:
    """Mute-for-an-hour and unwatch buttons; None when the id is too long for callback data."""
    buttons = [
        ("🔕 Mute 1 h", callback_data(CALLBACK_MUTE, subscription_id,
                                      str(constants.MUTE_BUTTON_SECONDS))),
        ("Unwatch", callback_data(CALLBACK_UNWATCH, subscription_id)),
    ]  # fmt: skip
    limit = constants.TELEGRAM_CALLBACK_DATA_LIMIT
    if any(len(data.encode()) > limit for _, data in buttons):
        return None
    return {"inline_keyboard": [[{"text": text, "callback_data": data} for text, data in buttons]]}


# --- the alert message -------------------------------------------------------------------------
def _channel_title(post: dict[str, Any]) -> str:
    title = post.get("channel_title") or f"@{post.get('channel', '?')}"
    return _cut(str(title), NAME_MAX_CHARS)


def _post_link(post: dict[str, Any]) -> str:
    link = post.get("link")
    if link:
        return str(link)
    return f"{constants.TELEGRAM_WEB_URL}/{post.get('channel', '')}/{post.get('message_id', '')}"


def _link_html(link: str) -> tuple[str, int]:
    label = link.removeprefix("https://").removeprefix("http://")
    return f'<a href="{_esc(link)}">{_esc(label)}</a>', utf16_len(label)


def render_telegram(
    alert: Alert,
    *,
    subscription_name: str | None = None,
    excerpt_chars: int = constants.TELEGRAM_EXCERPT_CHARS,
    limit: int = constants.TELEGRAM_MESSAGE_LIMIT,
) -> TelegramMessage:
    """The alert as a Telegram HTML message of at most ``limit`` visible units."""
    post = alert.post
    title = _channel_title(post)
    link_html, link_len = _link_html(_post_link(post))
    lines: list[tuple[str, int]] = [
        (f"<b>{_esc(title)}</b> · {link_html}", utf16_len(title) + 3 + link_len)
    ]
    if alert.edited_now_matches:
        note = "✏️ edited: now matches"
        lines.append((f"<i>{_esc(note)}</i>", utf16_len(note)))
    footer = "🔔 " + _cut(subscription_name or alert.subscription_id, NAME_MAX_CHARS)
    if alert.also_in:
        count = len(alert.also_in)
        footer += f" · also in {count} channel{'s' if count != 1 else ''}"
    # Lines are joined with "\n", the excerpt sits between blank lines: count every separator.
    fixed = sum(length for _, length in lines) + utf16_len(footer) + len(lines) + 3
    budget = min(excerpt_chars, limit - fixed)
    body, _ = excerpt_html(str(post.get("text") or ""), alert.highlights, budget)
    if not body:
        body = "<i>(no text)</i>" if budget >= 9 else ""
    text = "\n".join(html_line for html_line, _ in lines) + f"\n\n{body}\n\n{_esc(footer)}"
    return TelegramMessage(text=text, reply_markup=alert_keyboard(alert.subscription_id))


def render_digest(
    items: Sequence[tuple[Alert, str | None]],
    *,
    limit: int = constants.TELEGRAM_MESSAGE_LIMIT,
    max_items: int = constants.DIGEST_MAX_ITEMS,
) -> TelegramMessage:
    """Held alerts (each with its subscription's name) as one message within ``limit``."""
    header = f"🗞 Digest: {len(items)} alert{'s' if len(items) != 1 else ''}"
    parts = [f"<b>{_esc(header)}</b>"]
    used = utf16_len(header)
    more_reserve = 40  # room for the "… and N more" line
    shown = 0
    for alert, name in items[:max_items]:
        post = alert.post
        title = _channel_title(post)
        link_html, link_len = _link_html(_post_link(post))
        label = _cut(name or alert.subscription_id, NAME_MAX_CHARS)
        head_len = 2 + utf16_len(title) + 3 + link_len + 3 + utf16_len(label) + 1
        room = limit - used - more_reserve - head_len - 2
        if room < 20:
            break
        body, body_len = excerpt_html(
            str(post.get("text") or ""), alert.highlights, min(DIGEST_EXCERPT_CHARS, room)
        )
        parts.append(f"\n• <b>{_esc(title)}</b> · {link_html} · {_esc(label)}\n{body}")
        used += 2 + head_len + body_len
        shown += 1
    if shown < len(items):
        parts.append(f"\n\n{_esc(f'… and {len(items) - shown} more')}")
    return TelegramMessage(text="\n".join(parts), reply_markup=None)


# --- the webhook payload -----------------------------------------------------------------------
def _iso_from_epoch(value: float) -> str | None:
    return datetime.fromtimestamp(value, UTC).isoformat() if value else None


def webhook_payload(alert: Alert, *, subscription_name: str | None = None) -> dict[str, Any]:
    """The ``tgwatch.alert.v1`` JSON payload (documented in docs/webhooks.md)."""
    post = alert.post
    enrichment = alert.enrichment or {}
    return {
        "schema": constants.WEBHOOK_SCHEMA,
        "id": alert.id,
        "subscription": {"id": alert.subscription_id, "name": subscription_name},
        "channel": {
            "username": post.get("channel"),
            "id": post.get("channel_id"),
            "title": post.get("channel_title"),
        },
        "post": {
            "message_id": post.get("message_id"),
            "link": _post_link(post),
            "date": post.get("date"),
            "edit_date": post.get("edit_date"),
            "edited": bool(post.get("edited") or post.get("edit_date")),
            "text": post.get("text") or "",
        },
        "highlights": [h.to_dict() for h in alert.highlights],
        "topics": list(enrichment.get("topics", [])),
        "entities": list(enrichment.get("entities", [])),
        "lang": enrichment.get("lang"),
        "matched_at": _iso_from_epoch(alert.matched_at),
        "edited_now_matches": alert.edited_now_matches,
        "also_in": list(alert.also_in),
    }
