"""Turn a post into a MatchDocument: the text rules see, its tokens with their match keys, and
its field keys.

A post is prepared once: its visible text with ``url``/``email``/``mention`` spans blanked,
tokens with their keys (a Cyrillic token's lemmas and its exact form as ``=form``; other tokens
their normalized form), field keys (``#tag``, ``$ticker``, ``@name``, ``domain:host`` for the
host and each parent domain, ``channel:``, ``lang:``, ``topic:``, ``entity:``), and ``*prefix``
for every rule prefix a token starts with.

Building a document only computes its set of keys, which is all most candidate rules look at:
the keys of each whitespace-separated chunk of text are cached per index (``ChunkKeys``), so a
post costs a split, a few dictionary look-ups and a set union. Token positions and spans, which
only phrases and highlights need, are computed on first use.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

from service import constants
from service.core.memory import memoized, text_size
from service.core.model import Enrichment, Highlight
from service.core.morphology import lemma
from service.core.post import Entity, Post
from service.core.query.chunks import (
    _PLAIN,
    PREFIX_SIGIL,
    ChunkKeys,
    Span,
    clear_run_cache,
    prefix_key,
    token_keys,
)
from service.core.text import is_cyrillic, normalize, normalize_host

__all__ = [
    "PREFIX_SIGIL",
    "ChunkKeys",
    "MatchDocument",
    "Span",
    "build_document",
    "clear_run_cache",
    "domain_keys",
    "field_key",
    "host_of",
    "prefix_key",
    "token_keys",
    "word_key",
]

# A document finds the spans of this many keys by scanning its chunks, then maps every key to
# its chunks at once: a scan costs ~1/3 of the map, and most posts highlight one or two matches.
_SCANS_BEFORE_MAP = 3
# Entity types whose text a rule never sees as words.
BLANKED_ENTITIES = frozenset(("url", "email", "mention"))
_SIGIL_KEYS = {"hashtag": "#", "cashtag": "$", "mention": "@"}
# What field keys start with, besides ``name:`` ones; token keys are letters, digits, ``=`` (an
# exact form) or ``*`` (a prefix), never these nor a colon.
_FIELD_SIGILS = frozenset("#$@")


# --- keys -------------------------------------------------------------------------------------


# Query words' keys kept per process (a recompile finds them), bounded like every query cache.
WORD_KEYS_CACHE_BYTES = 16 * 1024 * 1024


def _lemma_key(norm: str) -> str:
    return lemma(norm) if is_cyrillic(norm) else norm


_lemma_keys = memoized(
    _lemma_key, WORD_KEYS_CACHE_BYTES, lambda norm, key: text_size(norm) + text_size(key)
)


def word_key(norm: str, exact: bool = False) -> str:
    """The index key of a query word: a Cyrillic word's primary lemma, or ``=form`` when exact;
    any other word its normalized form (which is already exact)."""
    if exact and is_cyrillic(norm):
        return f"={norm}"
    return _lemma_keys(norm)


def field_key(name: str, value: str) -> str:
    """The key of a field term (``tag``, ``cashtag``, ``mention`` or a ``name:`` field)."""
    if name == "tag":
        return f"#{value}"
    if name == "cashtag":
        return f"${value}"
    if name == "mention":
        return f"@{value}"
    return f"{name}:{value}"


# The common URL shape, whose host urlsplit would return as is (lower-cased): scheme, host of
# ASCII letters, digits, dots and dashes, optional port, then a path, query, fragment or the end.
_PLAIN_URL_RE = re.compile(r"https?://([a-z0-9.\-]+)(?::[0-9]*)?(?:[/?#]|\Z)", re.IGNORECASE)


def host_of(url: str) -> str | None:
    """The host of a URL as Telegram shows it (the scheme may be missing), normalized."""
    candidate = url.strip()
    if "://" not in candidate:
        candidate = f"http://{candidate}"
    plain = _PLAIN_URL_RE.match(candidate)
    if plain is not None:
        return normalize_host(plain.group(1))
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        return None
    return normalize_host(host) if host else None


def domain_keys(host: str) -> list[str]:
    """``domain:`` keys for a host and every parent: sub.example.com → itself, example.com, com."""
    parts = host.split(".")
    return [f"domain:{'.'.join(parts[i:])}" for i in range(len(parts)) if parts[i]]


# --- the document -----------------------------------------------------------------------------


class MatchDocument:
    """One post version prepared for matching; built once, tested by every candidate rule.

    ``keys`` is every key the post answers to (token keys, field keys, ``*prefix`` keys). The
    token sequence (phrases), token spans and the spans of a key (highlights) are computed on
    first use, from the chunks of the text and their cached keys."""

    __slots__ = (
        "_by_key",
        "_chunk_keys",
        "_chunks",
        "_distinct",
        "_highlights",
        "_key_highlights",
        "_positions",
        "_raw",
        "_regex",
        "_sequence",
        "_spans",
        "_tokens",
        "field_spans",
        "keys",
        "text",
        "visible",
    )

    def __init__(
        self,
        text: str,
        *,
        visible: str,
        keys: set[str],
        field_spans: dict[str, list[Span]],
        chunks: list[str] | None = None,
        distinct: Collection[str] | None = None,
        chunk_keys: ChunkKeys | None = None,
    ) -> None:
        self.text = text
        self.visible = visible  # the text with url, email and mention spans blanked
        self.keys = keys
        self.field_spans = field_spans
        self._chunks = visible.split() if chunks is None else chunks  # in text order
        self._distinct = set(self._chunks) if distinct is None else distinct
        self._chunk_keys = chunk_keys or _PLAIN
        self._sequence: list[tuple[str, ...]] | None = None
        self._tokens: list[tuple[int, int, str, tuple[str, ...]]] | None = None
        self._positions: dict[str, list[int]] = {}
        self._by_key: dict[str, list[str]] | None = None
        self._raw: bytes | None = None
        self._regex: dict[int, bool] = {}
        self._spans: dict[str, list[Span]] = {}
        self._highlights: dict[Span, Highlight] = {}
        self._key_highlights: dict[str, tuple[Highlight, ...]] = {}

    @property
    def sequence(self) -> list[tuple[str, ...]]:
        """The keys of every token, in text order (what phrases test)."""
        if self._sequence is None:
            self._sequence = self._chunk_keys.sequence(self._chunks)
        return self._sequence

    @property
    def tokens(self) -> list[tuple[int, int, str, tuple[str, ...]]]:
        """(start, end, normalized form, keys) of every token, in text order."""
        if self._tokens is None:
            self._tokens = self._chunk_keys.tokens(self.visible, self._chunks)
        return self._tokens

    def positions(self, key: str) -> list[int]:
        """Indices of the tokens that answer to ``key``, found on first use and cached."""
        found = self._positions.get(key)
        if found is None:
            if key in self.keys:
                found = [i for i, keys in enumerate(self.sequence) if key in keys]
            else:
                found = []
            self._positions[key] = found
        return found

    def spans_of(self, key: str) -> list[Span]:
        """Spans of the tokens and entities answering to ``key`` (a ``*prefix`` key: of the
        tokens starting with it), cached: rules share keys. Found through the chunks of the text
        that have the key: scanning them for the first few keys asked, then from a map of key
        to chunks built once."""
        spans = self._spans.get(key)
        if spans is None:
            if key not in self.keys:
                spans = []
            elif key[0] in _FIELD_SIGILS or ":" in key:
                # A field key (#tag, channel:x, topic:y, ...): no token of the text has it.
                spans = list(self.field_spans.get(key, ()))
            else:
                chunks: Iterable[str]
                if self._by_key is not None:
                    chunks = self._by_key.get(key, ())
                elif len(self._spans) < _SCANS_BEFORE_MAP:
                    chunks = self._distinct
                else:
                    self._by_key = self._chunk_keys.chunks_by_key(self._distinct)
                    chunks = self._by_key.get(key, ())
                spans = self._chunk_keys.spans(self.visible, chunks, key)
                spans.extend(self.field_spans.get(key, ()))
            self._spans[key] = spans
        return spans

    def prefix_spans(self, prefix: str) -> list[Span]:
        """Spans of the tokens whose normalized form starts with ``prefix``."""
        return self.spans_of(prefix_key(prefix))

    def highlight(self, start: int, end: int) -> Highlight:
        found = self._highlights.get((start, end))
        if found is None:
            found = Highlight(start, end, self.text[start:end])
            self._highlights[(start, end)] = found
        return found

    def key_highlights(self, key: str) -> tuple[Highlight, ...] | None:
        """The highlights of a rule that is the single term ``key``, once computed (many rules
        share a word); None until ``remember_highlights`` stores them."""
        return self._key_highlights.get(key)

    def remember_highlights(self, key: str, found: tuple[Highlight, ...]) -> None:
        self._key_highlights[key] = found

    def _bytes(self) -> bytes:
        if self._raw is None:
            self._raw = self.text.encode("utf-8", "surrogatepass")
        return self._raw

    @property
    def raw(self) -> bytes:
        """The text as UTF-8, what regexes run on."""
        return self._bytes()

    def regex_found(self, regex: Any) -> bool:
        """Whether ``regex`` matches anywhere in the raw text; cached per document."""
        hit = self._regex.get(id(regex))
        if hit is None:
            hit = regex.search(self._bytes()) is not None
            self._regex[id(regex)] = hit
        return hit

    def regex_spans(self, regex: Any) -> list[Span]:
        """Spans (string indices, not bytes) where ``regex`` matches the raw text."""
        raw = self._bytes()
        spans: list[Span] = []
        for found in regex.finditer(raw):
            start, end = found.span()
            spans.append((len(raw[:start].decode("utf-8", "replace")),
                          len(raw[:end].decode("utf-8", "replace"))))  # fmt: skip
            if len(spans) >= constants.HIGHLIGHTS_MAX:
                break
        return spans


def _blank(text: str, entities: Iterable[Entity]) -> str:
    for entity in entities:
        if entity.type in BLANKED_ENTITIES and entity.length > 0:
            start, end = max(entity.offset, 0), min(entity.end, len(text))
            if start < end:
                text = f"{text[:start]}{' ' * (end - start)}{text[end:]}"
    return text


def build_document(
    post: Post, enrichment: Enrichment | None = None, chunk_keys: ChunkKeys | None = None
) -> MatchDocument:
    """Prepare ``post`` for matching. ``chunk_keys`` is the index's key cache, which knows the
    rule prefixes (without it no prefix term can match)."""
    visible = _blank(post.text, post.entities) if post.entities else post.text
    chunk_keys = chunk_keys or _PLAIN
    chunks = visible.split()
    distinct = set(chunks)
    keys = chunk_keys.keys(distinct)
    field_spans: dict[str, list[Span]] = {}
    for entity in post.entities:
        span = (entity.offset, entity.end)
        sigil = _SIGIL_KEYS.get(entity.type)
        if sigil is not None:
            body = entity.text[1:] if entity.text[:1] in "#$@" else entity.text
            if body:
                field_spans.setdefault(f"{sigil}{normalize(body)}", []).append(span)
        url = entity.text if entity.type == "url" else entity.url
        if url and entity.type in ("url", "text_link"):
            host = host_of(url)
            for key in domain_keys(host) if host else ():
                field_spans.setdefault(key, []).append(span)
    keys.update(field_spans)
    keys.add(f"channel:{post.channel_key}")
    if enrichment is not None:
        if enrichment.lang:
            keys.add(f"lang:{enrichment.lang.lower()}")
        keys.update(f"topic:{topic.casefold()}" for topic in enrichment.topic_ids)
        for found_entity in enrichment.entities:
            if found_entity.id is not None:
                entity_key = f"entity:{found_entity.id}"
                keys.add(entity_key)
                field_spans.setdefault(entity_key, []).append(
                    (found_entity.start, found_entity.end)
                )
    return MatchDocument(
        post.text,
        visible=visible,
        keys=keys,
        field_spans=field_spans,
        chunks=chunks,
        distinct=distinct,
        chunk_keys=chunk_keys,
    )
