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
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from service import constants
from service.core.model import Enrichment, Highlight
from service.core.morphology import lemma, lemmas
from service.core.post import Entity, Post
from service.core.text import TOKEN_RE, is_cyrillic, normalize, normalize_host, run_norms

Span = tuple[int, int]
_SPAN = re.Match.span
# A prefix term's key: "*" never occurs in a word or field key.
PREFIX_SIGIL = "*"
# A document finds the spans of this many keys through their chunks, then indexes every token
# at once: a scan costs ~1/10 of indexing, and most posts highlight one or two matches.
_SCANS_BEFORE_TABLE = 8
# Entity types whose text a rule never sees as words.
BLANKED_ENTITIES = frozenset(("url", "email", "mention"))
_SIGIL_KEYS = {"hashtag": "#", "cashtag": "$", "mention": "@"}


# --- keys -------------------------------------------------------------------------------------


def word_key(norm: str, exact: bool = False) -> str:
    """The index key of a query word: a Cyrillic word's primary lemma, or ``=form`` when exact;
    any other word its normalized form (which is already exact)."""
    if not is_cyrillic(norm):
        return norm
    return f"={norm}" if exact else lemma(norm)


@lru_cache(maxsize=200_000)
def token_keys(norm: str) -> tuple[str, ...]:
    """The keys a text token answers to: every lemma plus ``=form`` for Cyrillic, else itself."""
    if not is_cyrillic(norm):
        return (norm,)
    return (*sorted(lemmas(norm)), f"={norm}")


def field_key(name: str, value: str) -> str:
    """The key of a field term (``tag``, ``cashtag``, ``mention`` or a ``name:`` field)."""
    if name == "tag":
        return f"#{value}"
    if name == "cashtag":
        return f"${value}"
    if name == "mention":
        return f"@{value}"
    return f"{name}:{value}"


def prefix_key(prefix: str) -> str:
    """The document key of a rule prefix (``санкц`` → ``*санкц``): present when a token of the
    post starts with it."""
    return f"{PREFIX_SIGIL}{prefix}"


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
        "_table",
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
        self._table: dict[str, list[Span]] | None = None
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
        tokens starting with it), cached: rules share keys. The first few keys asked for are
        found in the chunks that have them; past those, every token is indexed once."""
        spans = self._spans.get(key)
        if spans is None:
            if key not in self.keys:
                spans = []
            elif self._table is None and len(self._spans) < _SCANS_BEFORE_TABLE:
                spans = self._chunk_keys.spans(self.visible, self._distinct, key)
                spans.extend(self.field_spans.get(key, ()))
            else:
                if self._table is None:
                    self._table = _span_table(self.tokens)
                spans = [*self._table.get(key, ()), *self.field_spans.get(key, ())]
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


# Per run of letters as it appears in text: its (token, keys) pairs, and all its keys. Plain
# dicts rather than lru_cache: the hot loop looks runs up with map(dict.get), at C speed. Cleared
# when full, which a worker meets rarely (a language has far fewer frequent forms than this).
RUN_CACHE_MAX = 300_000
_RUN_TOKENS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
_RUN_KEYS: dict[str, tuple[str, ...]] = {}


def _run_tokens(run: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found = _RUN_TOKENS.get(run)
    if found is None:
        found = tuple((norm, token_keys(norm)) for norm in run_norms(run))
        if len(_RUN_TOKENS) >= RUN_CACHE_MAX:
            clear_run_cache()
        _RUN_TOKENS[run] = found
        _RUN_KEYS[run] = tuple(key for _norm, keys in found for key in keys)
    return found


def clear_run_cache() -> None:
    _RUN_TOKENS.clear()
    _RUN_KEYS.clear()


class ChunkKeys:
    """The keys of whitespace-separated chunks of text (``word,`` ``(слова)``), cached: every
    token key of the chunk's runs, and ``*prefix`` for each of ``prefixes`` a token starts with.

    An index keeps one (its prefixes are its own); a post's keys are then the union of its
    distinct chunks' cached keys. Whitespace never occurs inside a token, so the runs of the
    chunks are exactly the runs of the text."""

    def __init__(self, prefixes: Iterable[str] = (), max_size: int = RUN_CACHE_MAX) -> None:
        self.prefixes = frozenset(prefixes)
        self._lengths = tuple(sorted({len(prefix) for prefix in self.prefixes}))
        self._cache: dict[str, tuple[str, ...]] = {}
        # chunk -> its tokens with offsets, for phrases and highlights (filled when asked).
        self._entries: dict[str, tuple[tuple[int, int, str, tuple[str, ...]], ...]] = {}
        self._max_size = max_size

    def keys(self, chunks: Collection[str]) -> set[str]:
        """The union of the keys of ``chunks`` (distinct chunks: duplicates only cost time)."""
        cache = self._cache
        found = list(map(cache.get, chunks))
        if None in found:
            found = [self._miss(chunk) if keys is None else keys
                     for chunk, keys in zip(chunks, found, strict=True)]  # fmt: skip
        return set().union(*found)  # type: ignore[arg-type]

    def _miss(self, chunk: str) -> tuple[str, ...]:
        runs = TOKEN_RE.findall(chunk)
        if len(runs) == 1 and not self._lengths:
            _run_tokens(runs[0])
            keys = _RUN_KEYS[runs[0]]  # the run's own tuple: no copy per chunk
        else:
            found: list[str] = []
            for run in runs:
                for norm, token_keys_ in _run_tokens(run):
                    found.extend(token_keys_)
                    found.extend(self._prefix_keys(norm))
            keys = tuple(dict.fromkeys(found))
        if len(self._cache) >= self._max_size:
            self._cache.clear()
        self._cache[chunk] = keys
        return keys

    def sequence(self, chunks: list[str]) -> list[tuple[str, ...]]:
        """The keys of every token of ``chunks`` (in text order), one tuple per token."""
        entries = self._entries
        found = list(map(entries.get, chunks))
        if None in found:
            found = [self._runs(chunk) if entry is None else entry
                     for chunk, entry in zip(chunks, found, strict=True)]  # fmt: skip
        return [token[3] for entry in found for token in entry]  # type: ignore[union-attr]

    def spans(self, text: str, chunks: Iterable[str], key: str) -> list[Span]:
        """Spans in ``text`` (whose distinct chunks these are) of the tokens answering to
        ``key``, found through the chunks whose keys have it: cheaper than indexing every token
        of the text when a post has only a few matches to highlight."""
        found: list[Span] = []
        cache = self._cache
        for chunk in chunks:
            keys = cache.get(chunk)
            if key not in (self._miss(chunk) if keys is None else keys):
                continue
            runs = [(start, end) for start, end, _norm, keys_ in self._runs(chunk) if key in keys_]
            for at in _occurrences(text, chunk):
                found.extend((at + start, at + end) for start, end in runs)
        found.sort()
        return found

    def tokens(self, text: str, chunks: list[str]) -> list[tuple[int, int, str, tuple[str, ...]]]:
        """(start, end, norm, keys) of every token of ``text``, whose chunks these are, in order
        (a token's keys include its ``*prefix`` keys)."""
        tokens: list[tuple[int, int, str, tuple[str, ...]]] = []
        at = 0
        for chunk in chunks:
            at = text.find(chunk, at)  # only whitespace lies between the previous chunk and it
            tokens.extend((at + start, at + end, norm, keys)
                          for start, end, norm, keys in self._runs(chunk))  # fmt: skip
            at += len(chunk)
        return tokens

    def _runs(self, chunk: str) -> tuple[tuple[int, int, str, tuple[str, ...]], ...]:
        """(start, end, norm, keys) of the tokens of ``chunk``, offsets within it; a token's
        keys include the ``*prefix`` keys of the prefixes it starts with."""
        entry = self._entries.get(chunk)
        if entry is None:
            entry = tuple(
                (start, end, norm, (*keys, *self._prefix_keys(norm)) if self._lengths else keys)
                for start, end in map(_SPAN, TOKEN_RE.finditer(chunk))
                for norm, keys in _run_tokens(chunk[start:end])
            )
            if len(self._entries) >= self._max_size:
                self._entries.clear()
            self._entries[chunk] = entry
        return entry

    def _prefix_keys(self, norm: str) -> list[str]:
        prefixes = self.prefixes
        return [prefix_key(norm[:length]) for length in self._lengths
                if length <= len(norm) and norm[:length] in prefixes]  # fmt: skip


_PLAIN = ChunkKeys()  # documents built without an index: no prefixes


def _occurrences(text: str, chunk: str) -> list[int]:
    """Where ``chunk`` occurs in ``text`` as a whole chunk (whitespace or an end either side)."""
    found = []
    size = len(chunk)
    at = text.find(chunk)
    while at >= 0:
        end = at + size
        if (at == 0 or text[at - 1].isspace()) and (end == len(text) or text[end].isspace()):
            found.append(at)
        at = text.find(chunk, at + 1)
    return found


def _span_table(tokens: list[tuple[int, int, str, tuple[str, ...]]]) -> dict[str, list[Span]]:
    table: dict[str, list[Span]] = {}
    for start, end, _norm, keys in tokens:
        for key in keys:
            table.setdefault(key, []).append((start, end))
    return table


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
