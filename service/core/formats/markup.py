"""Message-text markup of the web preview turned into text and entities, in linear time.

The walk appends text pieces and records where each formatting element starts and ends; entity
texts and link types are settled once, on the finished text, so a page full of links costs one
pass (joining the text at every element made a 352 KiB page take 12.7 s).

A page saved by a browser or re-wrapped by an editor gains line breaks and indentation inside
the markup that were never part of the post (Telegram writes line breaks as ``<br/>``). Such
whitespace runs are read as a browser renders them: one space, none at the start or end of a
line. Text inside ``<pre>`` keeps its whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from selectolax.lexbor import LexborNode

from service.core.post import Entity

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

_TME_RE = re.compile(r"^https?://t\.me/(?:s/)?([A-Za-z0-9_]{1,64})(?:/(\d{1,12}))?/?(?:[?#].*)?$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# Whitespace of the page source, not of the post: a run holding a line break.
_SOURCE_WRAP_RE = re.compile(r"[ \t]*[\r\n][ \t\r\n]*")


@dataclass
class _Span:
    """An element's stretch of text, settled into an entity when the text is complete."""

    type: str | None
    start: int
    end: int
    url: str | None = None
    emoji_id: str | None = None
    link: LexborNode | None = None


@dataclass
class _Text:
    """Text being assembled from markup: pieces, element spans and source-wrap spaces."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    spans: list[_Span] = field(default_factory=list)
    soft: list[int] = field(default_factory=list)

    def add(self, piece: str) -> None:
        if piece:
            self.parts.append(piece)
            self.length += len(piece)

    def add_source(self, piece: str) -> None:
        """Add a text node of the page source, reading line-wrap whitespace as one space."""
        if "\n" not in piece and "\r" not in piece:
            self.add(piece)
            return
        position = 0
        for wrap in _SOURCE_WRAP_RE.finditer(piece):
            self.add(piece[position : wrap.start()])
            self.soft.append(self.length)
            self.add(" ")
            position = wrap.end()
        self.add(piece[position:])


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
    """Append the text under ``root`` to ``out``, recording a span for each element.

    Iterative, with an explicit stack, so absurdly nested markup cannot exhaust recursion.
    """
    stack: list[tuple[LexborNode, int | None]] = [(c, None) for c in reversed(_children(root))]
    in_pre = 0
    while stack:
        node, opened_at = stack.pop()
        tag = node.tag or ""
        if opened_at is not None:
            if tag == "pre":
                in_pre -= 1
            _close(node, opened_at, out)
            continue
        if node.is_text_node:
            piece = node.text_content or ""
            out.add(piece) if in_pre else out.add_source(piece)
        elif tag == "br":
            out.add("\n")
        elif tag.startswith("-") or tag in ("script", "style"):
            continue
        elif tag == "i" and "emoji" in _classes(node):
            # Every emoji is <i class="emoji"><b>🇷🇺</b></i>: keep the character, not a bold span
            # (nor the indentation a re-wrapped page put around it).
            out.add("".join(node.text(deep=True).split()))
        else:
            if tag == "pre":
                in_pre += 1
            stack.append((node, out.length))
            stack.extend((child, None) for child in reversed(_children(node)))


def _close(node: LexborNode, start: int, out: _Text) -> None:
    """Record the span an element stands for, now that its text is in ``out``."""
    if out.length <= start:
        return
    tag = node.tag or ""
    if tag == "a":
        out.spans.append(_Span(None, start, out.length, link=node))
        return
    type_name = FORMAT_TAGS.get(tag)
    emoji_id = None
    if tag == "blockquote":
        type_name = "expandable_blockquote" if "expandable" in node.attributes else "blockquote"
    elif tag == "tg-emoji":
        type_name = "custom_emoji"
        emoji_id = node.attributes.get("emoji-id") or None
    elif tag == "span" and "tg-spoiler" in _classes(node):
        type_name = "spoiler"
    if type_name is not None:
        out.spans.append(_Span(type_name, start, out.length, emoji_id=emoji_id))


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


def _settle(out: _Text) -> tuple[str, list[_Span]]:
    """The text with source-wrap spaces dropped where a browser shows none, spans moved along."""
    text = "".join(out.parts)
    if not out.soft:
        return text, out.spans
    drop = []
    for index in out.soft:
        before = text[index - 1] if index > 0 else "\n"
        after = text[index + 1] if index + 1 < len(text) else "\n"
        if before in " \n" or after in " \n":
            drop.append(index)
    if not drop:
        return text, out.spans
    dropped = set(drop)
    kept = "".join(char for index, char in enumerate(text) if index not in dropped)
    # shift[i]: how many dropped characters lie before position i (one pass over the text).
    shift = [0] * (len(text) + 1)
    count = 0
    for index in range(len(text)):
        shift[index] = count
        if index in dropped:
            count += 1
    shift[len(text)] = count
    moved = [
        _Span(s.type, s.start - shift[s.start], s.end - shift[s.end], s.url, s.emoji_id, s.link)
        for s in out.spans
    ]
    return kept, moved


def rich_text(node: LexborNode) -> tuple[str, tuple[Entity, ...]]:
    """Text and entities of a message-text element: emoji kept, <br> as newlines, trimmed."""
    out = _Text()
    _walk(node, out)
    text, spans = _settle(out)
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    text = text[start:end]
    entities: list[Entity] = []
    for span in spans:
        left = max(span.start - start, 0)
        right = min(span.end - start, len(text))
        if right <= left:
            continue
        piece = text[left:right]
        type_, url = span.type, span.url
        if span.link is not None:
            type_, url = _link_entity(span.link, piece)
        if type_ is not None:
            entities.append(Entity(type_, left, right - left, piece, url, span.emoji_id))
    entities.sort(key=lambda entity: (entity.offset, -entity.length))
    return text, tuple(entities)
