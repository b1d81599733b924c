"""The public web preview page ``t.me/s/<channel>`` parsed into posts and paging cursors."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from selectolax.lexbor import LexborHTMLParser, LexborNode

from service.core.formats import content
from service.core.formats.content import Content, is_int
from service.core.formats.markup import rich_text
from service.core.formats.result import FormatError, Rejected, failure_reason
from service.core.post import CHANNEL_ID_BASE, ForwardOrigin, Post

# Media markers inside a message block, in the order checked, with the kind a post records.
MEDIA_SELECTORS = (
    (".tgme_widget_message_roundvideo_player", "video_note"),
    (".tgme_widget_message_video_player", "video"),
    ("video.tgme_widget_message_video", "video"),
    (".tgme_widget_message_photo_wrap", "photo"),
    (".tgme_widget_message_voice", "voice"),
    (".tgme_widget_message_poll", "poll"),
    (".tgme_widget_message_sticker_wrap", "sticker"),
    (".tgme_widget_message_sticker", "sticker"),
    (".tgme_widget_message_tgsticker", "sticker"),
    (".tgme_widget_message_videosticker", "sticker"),
    (".tgme_widget_message_location_wrap", "location"),
    (".tgme_widget_message_contact", "contact"),
    (".tgme_widget_message_document", "document"),
)
# The label a block shows when the page cannot show its content at all.
NOT_SUPPORTED = ".message_media_not_supported"

# Any of these marks a t.me/s page; a page with none of them is not a preview page at all.
PAGE_MARKERS = (
    ".tgme_channel_history",
    ".tgme_widget_message",
    ".tme_no_messages_found",
    ".tgme_channel_info",
)

VIEW_MULTIPLIERS = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}
# ``data-view`` is a short base64 JSON object; anything longer is not one (and is not decoded).
DATA_VIEW_MAX = 512

_DATA_POST_RE = re.compile(r"^([A-Za-z0-9_]{1,64})/(\d{1,12})$")
_TME_RE = re.compile(r"^https?://t\.me/(?:s/)?([A-Za-z0-9_]{1,64})(?:/(\d{1,12}))?/?(?:[?#].*)?$")
# A channel without a username is linked as t.me/c/<bare id>/<message id>.
_TME_PRIVATE_RE = re.compile(r"^https?://t\.me/c/(\d{1,16})(?:/(\d{1,12}))?/?(?:[?#].*)?$")
_TRAILING_ID_RE = re.compile(r"/(\d{1,12})/?(?:[?#].*)?$")
_SINGLE_RE = re.compile(r"/(\d{1,12})\?single")
# Message ids fit in 18 digits; a longer number is not a cursor (and int() would refuse it).
_CURSOR_RE = re.compile(r"[?&](before|after)=(\d{1,18})(?!\d)")
_VIEWS_RE = re.compile(r"([\d.,]{1,20})\s*([KMB]?)", re.IGNORECASE)
# Lone surrogates (undecodable bytes of a saved page) cannot reach the HTML parser.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass
class PreviewChannel:
    """The channel a preview page shows, as far as the page tells."""

    username: str | None = None
    title: str | None = None
    channel_id: int | None = None


@dataclass
class PreviewPage:
    """One parsed page: its posts (oldest first) and where the neighbouring pages start.

    ``before`` is the ``?before=`` value of the older page (None at the start of history),
    ``after`` the ``?after=`` value of the newer page (None on the newest page), ``read`` the
    number of message blocks looked at, ``skipped`` those left out on purpose, by reason.
    """

    channel: PreviewChannel
    posts: list[Post]
    rejected: list[Rejected]
    before: int | None
    no_messages: bool = False
    after: int | None = None
    read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").split())


def parse_views(value: str) -> int | None:
    """A rounded view count as shown ("17.9K" → 17900, "1.38K" → 1380, "2M" → 2000000)."""
    match = _VIEWS_RE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        number = Decimal(match.group(1).replace(",", ""))
    except InvalidOperation:
        return None
    return content.views(int(number * VIEW_MULTIPLIERS[match.group(2).upper()]))


def _channel_id(data_view: str | None) -> int | None:
    """The Bot API chat id from ``data-view``, base64 JSON whose ``c`` is ``-<bare id>``.

    Anything that is not such a small object (malformed, nested, out of range) gives None.
    """
    if not data_view or len(data_view) > DATA_VIEW_MAX:
        return None
    try:
        decoded = json.loads(base64.b64decode(data_view + "=" * (-len(data_view) % 4)))
        bare = decoded.get("c") if isinstance(decoded, dict) else None
        if is_int(bare) and 0 < abs(bare) < CHANNEL_ID_BASE:
            return -(CHANNEL_ID_BASE + abs(bare))
    except (ValueError, RecursionError):  # binascii.Error and JSON errors are ValueErrors
        return None
    return None


def _forward(block: LexborNode) -> ForwardOrigin | None:
    box = block.css_first(".tgme_widget_message_forwarded_from")
    if box is None:
        return None
    name = box.css_first(".tgme_widget_message_forwarded_from_name")
    if name is None:
        label = box.text(deep=True).replace("\xa0", " ").removeprefix("Forwarded from").strip()
        return ForwardOrigin(title=label or None)
    title = rich_text(name)[0] or None
    href = name.attributes.get("href") or ""
    if (private := _TME_PRIVATE_RE.match(href)) is not None:
        bare = int(private.group(1))
        message_id = private.group(2)
        return ForwardOrigin(
            title=title,
            channel_id=-(CHANNEL_ID_BASE + bare) if 0 < bare < CHANNEL_ID_BASE else None,
            message_id=content.message_id(int(message_id), "forward") if message_id else None,
        )
    match = _TME_RE.match(href)
    if match is None:
        return ForwardOrigin(title=title)
    message_id = match.group(2)
    return ForwardOrigin(
        title=title,
        username=match.group(1),
        message_id=content.message_id(int(message_id), "forward") if message_id else None,
    )


def _media(node: LexborNode) -> str | None:
    for selector, kind in MEDIA_SELECTORS:
        if node.css_first(selector) is not None:
            return kind
    return None


def _date(block: LexborNode) -> datetime:
    node = block.css_first(".tgme_widget_message_date time[datetime]")
    node = node or block.css_first(".tgme_widget_message_meta time[datetime]")
    value = node.attributes.get("datetime") if node is not None else None
    if not value:
        raise FormatError("message block has no <time datetime>")
    try:
        parsed = datetime.fromisoformat(value[:64])
    except ValueError as exc:
        raise FormatError(f"message date is not ISO 8601: {value!r:.60}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return content.checked_date(parsed, "message date")


def _body_texts(block: LexborNode) -> list[LexborNode]:
    """The message's own text elements: not a reply's quote, not nested in another text."""
    found: list[LexborNode] = []
    for node in block.css(".js-message_text"):
        parent = node.parent
        inside = False
        while parent is not None and parent is not block:
            classes = _classes(parent)
            if "js-message_text" in classes or "tgme_widget_message_reply" in classes:
                inside = True
                break
            parent = parent.parent
        if not inside:
            found.append(node)
    return found


def _poll(block: LexborNode, found: Content) -> None:
    question = block.css_first(".tgme_widget_message_poll_question")
    if question is not None:
        found.add("question", *rich_text(question))
    for option in block.css(".tgme_widget_message_poll_option_text"):
        found.add("option", *rich_text(option))


def _album(block: LexborNode) -> tuple[tuple[int, ...], str | None]:
    """The item ids of an album block and the first item's media kind."""
    grouped = block.css_first(".tgme_widget_message_grouped_wrap")
    if grouped is None:
        return (), None
    ids: set[int] = set()
    first_kind: str | None = None
    for link in grouped.css("a[href]"):
        found = _SINGLE_RE.search(link.attributes.get("href") or "")
        if found is None:
            continue
        ids.add(content.message_id(int(found.group(1)), "album item"))
        if first_kind is None:
            classes = _classes(link)
            first_kind = "video" if "tgme_widget_message_video_player" in classes else "photo"
    return tuple(sorted(ids)), first_kind


def _post_id(block: LexborNode) -> re.Match[str] | None:
    """``<channel>/<id>`` from ``data-post``, else from the date link (trimmed saved pages)."""
    match = _DATA_POST_RE.match(block.attributes.get("data-post") or "")
    if match is None and (link := block.css_first("a.tgme_widget_message_date[href]")):
        found = _TME_RE.match(link.attributes.get("href") or "")
        if found is not None and found.group(2):
            match = _DATA_POST_RE.match(f"{found.group(1)}/{found.group(2)}")
    return match


def _parse_block(block: LexborNode, channel: PreviewChannel, source: str) -> Post | str:
    """One message block as a post, or why it is skipped; FormatError if malformed."""
    match = _post_id(block)
    if match is None:
        raise FormatError("message block has no data-post=<channel>/<id> (nor a date link)")
    if "service_message" in _classes(block):
        return "service"
    username = match.group(1)
    message_id = content.message_id(int(match.group(2)), "data-post id")
    date = _date(block)
    forward = _forward(block)
    album_items, album_media = _album(block)
    media = album_media or _media(block)

    found = Content()
    for node in _body_texts(block):
        found.add("caption" if media else "text", *rich_text(node))
    if media == "poll":
        _poll(block, found)
    if not found and media is None:
        return "unsupported" if block.css_first(NOT_SUPPORTED) is not None else "service"
    text, entities, parts = found.build()

    meta = block.css_first(".tgme_widget_message_meta")
    edited = meta is not None and any(
        child.is_text_node and "edited" in (child.text_content or "")
        for child in meta.iter(include_text=True)
    )
    views_node = block.css_first(".tgme_widget_message_views")
    views = parse_views(views_node.text(deep=True)) if views_node is not None else None
    reply_node = block.css_first("a.tgme_widget_message_reply")
    reply_to = None
    if reply_node is not None:
        reply_match = _TRAILING_ID_RE.search(reply_node.attributes.get("href") or "")
        reply_to = content.message_id(int(reply_match.group(1)), "reply") if reply_match else None
    title = channel.title
    if title is None and (owner := block.css_first(".tgme_widget_message_owner_name")):
        title = rich_text(owner)[0] or None
    author_node = block.css_first(".tgme_widget_message_from_author")
    author = author_node.text(deep=True).strip() if author_node is not None else ""
    return Post(
        channel=username,
        message_id=min((message_id, *album_items)),
        date=date,
        text=text,
        channel_id=_channel_id(block.attributes.get("data-view")) or channel.channel_id,
        channel_title=title,
        edited=edited,
        entities=entities,
        forward=forward,
        media=media,
        album_items=album_items,
        reply_to=reply_to,
        views=views,
        source=source,
        author=author or None,
        parts=parts,
    )


def _cursor(tree: LexborHTMLParser, direction: str) -> int | None:
    """The ``?before=``/``?after=`` value from <link rel=prev/next> or the "more" link."""
    rel = "prev" if direction == "before" else "next"
    for node in tree.css(f'link[rel="{rel}"]'):
        for found in _CURSOR_RE.finditer(node.attributes.get("href") or ""):
            if found.group(1) == direction:
                return int(found.group(2))
    for node in tree.css(f".tme_messages_more[data-{direction}]"):
        value = node.attributes.get(f"data-{direction}") or ""
        if value.isdigit() and len(value) <= 18:
            return int(value)
    return None


def _page_channel(tree: LexborHTMLParser, blocks: list[LexborNode]) -> PreviewChannel:
    channel = PreviewChannel()
    title_node = tree.css_first(".tgme_channel_info_header_title")
    if title_node is not None:
        channel.title = rich_text(title_node)[0] or None
    for block in blocks:
        match = _post_id(block)
        if match and channel.username is None:
            channel.username = match.group(1)
        if channel.channel_id is None:
            channel.channel_id = _channel_id(block.attributes.get("data-view"))
    if channel.username is None:
        header = tree.css_first(".tgme_channel_info_header_username a")
        name = header.text(deep=True).strip().lstrip("@") if header is not None else ""
        channel.username = name if re.fullmatch(r"[A-Za-z0-9_]{1,64}", name) else None
    return channel


def parse_preview(
    html: str, *, source_name: str = "<preview>", source: str = "preview"
) -> PreviewPage:
    """Parse one ``t.me/s/<channel>`` page; FormatError if it is not such a page at all.

    Bytes of a saved page that were not UTF-8 show as U+FFFD, as a browser shows them.
    """
    if not isinstance(html, str):
        raise FormatError("a preview page must be text")
    if not html.isascii():
        html = _SURROGATE_RE.sub("\ufffd", html)
    tree = LexborHTMLParser(html)
    if not any(tree.css_first(marker) is not None for marker in PAGE_MARKERS):
        raise FormatError("not a t.me/s preview page: no channel history or message blocks")
    blocks = tree.css("div.tgme_widget_message")
    channel = _page_channel(tree, blocks)
    page = PreviewPage(
        channel=channel,
        posts=[],
        rejected=[],
        before=_cursor(tree, "before"),
        no_messages=tree.css_first(".tme_no_messages_found") is not None,
        after=_cursor(tree, "after"),
        read=len(blocks),
    )
    for index, block in enumerate(blocks):
        try:
            outcome = _parse_block(block, channel, source)
        except Exception as exc:  # the item boundary: one block never takes the page
            page.rejected.append(
                Rejected.of(source_name, index, failure_reason(exc), block.html or "")
            )
            continue
        if isinstance(outcome, Post):
            page.posts.append(outcome)
        else:
            page.skipped[outcome] = page.skipped.get(outcome, 0) + 1
    return page
