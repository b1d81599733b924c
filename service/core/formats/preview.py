"""The public web preview page ``t.me/s/<channel>`` parsed into posts and paging cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

from service.core.formats.result import FormatError, Rejected
from service.core.post import CHANNEL_ID_BASE, Entity, ForwardOrigin, Post

# Inline formatting tags of message text and the entity type each one stands for.
FORMAT_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
}

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
    (".tgme_widget_message_location_wrap", "location"),
    (".tgme_widget_message_document", "document"),
)

# Any of these marks a t.me/s page; a page with none of them is not a preview page at all.
PAGE_MARKERS = (
    ".tgme_channel_history",
    ".tgme_widget_message",
    ".tme_no_messages_found",
    ".tgme_channel_info",
)

VIEW_MULTIPLIERS = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}

_DATA_POST_RE = re.compile(r"^([A-Za-z0-9_]+)/(\d+)$")
_TME_RE = re.compile(r"^https?://t\.me/(?:s/)?([A-Za-z0-9_]+)(?:/(\d+))?/?(?:[?#].*)?$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_TRAILING_ID_RE = re.compile(r"/(\d+)/?(?:[?#].*)?$")
_SINGLE_RE = re.compile(r"/(\d+)\?single")
# Message ids fit in 18 digits; a longer number is not a cursor (and int() would refuse it).
_CURSOR_RE = re.compile(r"[?&](before|after)=(\d{1,18})(?!\d)")
_VIEWS_RE = re.compile(r"([\d.,]+)\s*([KMB]?)", re.IGNORECASE)


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
    number of message blocks looked at.
    """

    channel: PreviewChannel
    posts: list[Post]
    rejected: list[Rejected]
    before: int | None
    no_messages: bool = False
    after: int | None = None
    read: int = 0


@dataclass
class _Text:
    """Text being assembled from markup, with the entities found so far."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    entities: list[Entity] = field(default_factory=list)

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += len(piece)

    def mark(self, type_: str, start: int, url: str | None = None) -> None:
        if self.length > start:
            text = "".join(self.parts)[start:]
            self.entities.append(Entity(type_, start, self.length - start, text, url))


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").split())


def _children(node: LexborNode) -> list[LexborNode]:
    children = []
    child = node.child
    while child is not None:
        children.append(child)
        child = child.next
    return children


def _walk(root: LexborNode, out: _Text) -> None:
    """Append the text under ``root`` to ``out``, marking entities as their elements close.

    Iterative, with an explicit stack, so absurdly nested markup cannot exhaust recursion.
    """
    stack: list[tuple[LexborNode, int | None]] = [(c, None) for c in reversed(_children(root))]
    while stack:
        node, opened_at = stack.pop()
        if opened_at is not None:
            _close(node, opened_at, out)
            continue
        tag = node.tag or ""
        if node.is_text_node:
            out.add(node.text_content or "")
        elif tag == "br":
            out.add("\n")
        elif tag.startswith("-") or tag in ("script", "style"):
            continue
        elif tag == "i" and "emoji" in _classes(node):
            # Every emoji is <i class="emoji"><b>🇷🇺</b></i>: keep the character, not a bold span.
            out.add(node.text(deep=True))
        else:
            stack.append((node, out.length))
            stack.extend((child, None) for child in reversed(_children(node)))


def _close(node: LexborNode, start: int, out: _Text) -> None:
    """Record the entity an element stands for, now that its text is in ``out``."""
    tag = node.tag or ""
    if tag == "a":
        type_, url = _link_entity(node, "".join(out.parts)[start:])
        out.mark(type_, start, url)
        return
    type_name = FORMAT_TAGS.get(tag)
    if tag == "blockquote":
        type_name = "expandable_blockquote" if "expandable" in node.attributes else "blockquote"
    elif tag == "tg-emoji":
        type_name = "custom_emoji"
    elif tag == "span" and "tg-spoiler" in _classes(node):
        type_name = "spoiler"
    if type_name is not None:
        out.mark(type_name, start, None)


def _strip_scheme(url: str) -> str:
    bare = _SCHEME_RE.sub("", url.strip())
    return bare.removeprefix("www.").rstrip("/").casefold()


def _link_entity(node: LexborNode, text: str) -> tuple[str, str | None]:
    """The entity an <a> in message text stands for: (type, url for text links)."""
    href = (node.attributes.get("href") or "").replace("&amp;", "&")
    if "onclick" in node.attributes:
        # Hidden links (text_link) ask "Open this link?" before following.
        return "text_link", href
    if href.startswith("?q="):
        query = unquote(href[3:])
        if query.startswith("#") and text.startswith("#"):
            return "hashtag", None
        if query.startswith("$") and text.startswith("$"):
            return "cashtag", None
    match = _TME_RE.match(href)
    if match and text.startswith("@") and match.group(1).casefold() == text[1:].casefold():
        return "mention", None
    if href.startswith("mailto:") and href[7:].casefold() == text.casefold():
        return "email", None
    if href.startswith("tel:"):
        return "phone_number", None
    if text and _strip_scheme(text) == _strip_scheme(href):
        return "url", None
    return "text_link", href


def _trimmed(text: str, entities: list[Entity]) -> tuple[str, tuple[Entity, ...]]:
    """Strip surrounding whitespace (markup indentation), moving entities with the text."""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start == 0 and end == len(text):
        kept = entities
    else:
        text = text[start:end]
        kept = []
        for entity in entities:
            left = max(entity.offset - start, 0)
            right = min(entity.end - start, len(text))
            if right > left:
                kept.append(Entity(entity.type, left, right - left, text[left:right], entity.url))
    return text, tuple(sorted(kept, key=lambda entity: (entity.offset, -entity.length)))


def rich_text(node: LexborNode) -> tuple[str, tuple[Entity, ...]]:
    """Text and entities of a message-text element: emoji kept, <br> as newlines."""
    out = _Text()
    _walk(node, out)
    return _trimmed("".join(out.parts), out.entities)


def parse_views(value: str) -> int | None:
    """A rounded view count as shown ("17.9K" → 17900, "1.38K" → 1380, "2M" → 2000000)."""
    match = _VIEWS_RE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        number = Decimal(match.group(1).replace(",", ""))
    except InvalidOperation:
        return None
    return int(number * VIEW_MULTIPLIERS[match.group(2).upper()])


def _channel_id(data_view: str | None) -> int | None:
    """The Bot API chat id from ``data-view``, base64 JSON whose ``c`` is ``-<bare id>``."""
    if not data_view:
        return None
    try:
        decoded = json.loads(base64.b64decode(data_view + "=" * (-len(data_view) % 4)))
    except (ValueError, binascii.Error):
        return None
    bare = decoded.get("c") if isinstance(decoded, dict) else None
    if isinstance(bare, int) and not isinstance(bare, bool) and bare != 0:
        return -(CHANNEL_ID_BASE + abs(bare))
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
    match = _TME_RE.match(name.attributes.get("href") or "")
    if match is None:
        return ForwardOrigin(title=title)
    message_id = int(match.group(2)) if match.group(2) else None
    return ForwardOrigin(title=title, username=match.group(1), message_id=message_id)


def _media(block: LexborNode) -> str | None:
    for selector, kind in MEDIA_SELECTORS:
        if block.css_first(selector) is not None:
            return kind
    return None


def _date(block: LexborNode) -> datetime:
    node = block.css_first(".tgme_widget_message_date time[datetime]")
    node = node or block.css_first(".tgme_widget_message_meta time[datetime]")
    value = node.attributes.get("datetime") if node is not None else None
    if not value:
        raise FormatError("message block has no <time datetime>")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FormatError(f"message date is not ISO 8601: {value!r:.60}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_block(block: LexborNode, channel: PreviewChannel, source: str) -> Post | None:
    """One message block as a post; None for a service message; FormatError if malformed."""
    match = _DATA_POST_RE.match(block.attributes.get("data-post") or "")
    if match is None:
        raise FormatError("message block has no data-post=<channel>/<id>")
    if "service_message" in _classes(block):
        return None
    username, message_id = match.group(1), int(match.group(2))
    date = _date(block)
    text_node = block.css_first(".js-message_text")
    text, entities = rich_text(text_node) if text_node is not None else ("", ())
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
        reply_to = int(reply_match.group(1)) if reply_match else None
    album_items: tuple[int, ...] = ()
    grouped = block.css_first(".tgme_widget_message_grouped_wrap")
    if grouped is not None:
        ids = {
            int(found.group(1))
            for link in grouped.css("a[href]")
            if (found := _SINGLE_RE.search(link.attributes.get("href") or ""))
        }
        album_items = tuple(sorted(ids))
    title = channel.title
    if title is None and (owner := block.css_first(".tgme_widget_message_owner_name")):
        title = rich_text(owner)[0] or None
    return Post(
        channel=username,
        message_id=message_id,
        date=date,
        text=text,
        channel_id=_channel_id(block.attributes.get("data-view")) or channel.channel_id,
        channel_title=title,
        edited=edited,
        entities=entities,
        forward=_forward(block),
        media=_media(block),
        album_items=album_items,
        reply_to=reply_to,
        views=views,
        source=source,
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
        match = _DATA_POST_RE.match(block.attributes.get("data-post") or "")
        if match and channel.username is None:
            channel.username = match.group(1)
        if channel.channel_id is None:
            channel.channel_id = _channel_id(block.attributes.get("data-view"))
    if channel.username is None:
        header = tree.css_first(".tgme_channel_info_header_username a")
        name = header.text(deep=True).strip().lstrip("@") if header is not None else ""
        channel.username = name or None
    return channel


def parse_preview(
    html: str, *, source_name: str = "<preview>", source: str = "preview"
) -> PreviewPage:
    """Parse one ``t.me/s/<channel>`` page; FormatError if it is not such a page at all."""
    if not isinstance(html, str):
        raise FormatError("a preview page must be text")
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
            post = _parse_block(block, channel, source)
        except ValueError as exc:  # FormatError, or an id past Python's integer digit limit
            page.rejected.append(Rejected.of(source_name, index, str(exc), block.html or ""))
            continue
        if post is not None:
            page.posts.append(post)
    return page
