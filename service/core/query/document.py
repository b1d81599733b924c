"""Turn a post into a MatchDocument: the text rules see, its tokens with their match keys, and
its field keys.

A post is prepared once: its visible text with ``url``/``email``/``mention`` spans blanked,
tokens with their keys (a Cyrillic token's lemmas and its exact form as ``=form``; other tokens
their normalized form), and field keys (``#tag``, ``$ticker``, ``@name``, ``domain:host`` for the
host and each parent domain, ``channel:``, ``lang:``, ``topic:``, ``entity:``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from service import constants
from service.core.model import Enrichment, Highlight
from service.core.morphology import lemma, lemmas
from service.core.post import Entity, Post
from service.core.text import TOKEN_RE, is_cyrillic, normalize, normalize_host, run_norms

Span = tuple[int, int]
# A document scans its tokens per asked key this many times, then indexes them all at once:
# a scan costs ~1/8 of indexing, and most posts ask for the keys of one or two matches.
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


def host_of(url: str) -> str | None:
    """The host of a URL as Telegram shows it (the scheme may be missing), normalized."""
    candidate = url.strip()
    if "://" not in candidate:
        candidate = f"http://{candidate}"
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
    """One post version prepared for matching; built once, tested by every candidate rule."""

    __slots__ = (
        "_highlights",
        "_positions",
        "_raw",
        "_regex",
        "_spans",
        "_tokens",
        "field_spans",
        "keys",
        "prefix_hits",
        "runs",
        "text",
        "visible",
    )

    def __init__(
        self,
        text: str,
        *,
        visible: str,
        runs: list[str],
        keys: set[str],
        field_spans: dict[str, list[Span]],
        prefix_hits: dict[str, list[str]],
    ) -> None:
        self.text = text
        self.visible = visible  # the text with url, email and mention spans blanked
        self.runs = runs  # its runs of letters and digits, in order
        self._tokens: list[tuple[int, int, str, tuple[str, ...]]] | None = None
        self.keys = keys
        self.field_spans = field_spans
        self.prefix_hits = prefix_hits
        self._positions: dict[str, list[int]] | None = None
        self._raw: bytes | None = None
        self._regex: dict[int, bool] = {}
        self._spans: dict[str, list[Span]] = {}
        self._highlights: dict[Span, Highlight] = {}

    @property
    def tokens(self) -> list[tuple[int, int, str, tuple[str, ...]]]:
        """(start, end, normalized form, keys) of every token, in text order."""
        if self._tokens is None:
            self._tokens = _tokens(self.visible, self.runs)
        return self._tokens

    def positions(self, key: str) -> list[int]:
        """Indices of the tokens that answer to ``key``, found on first use and cached (only the
        keys of matched rules and phrases are ever asked for)."""
        if self._positions is None:
            self._positions = {}
        found = self._positions.get(key)
        if found is None:
            if key not in self.keys:
                found = []
            elif len(self._positions) < _SCANS_BEFORE_TABLE:
                found = [i for i, token in enumerate(self.tokens) if key in token[3]]
            else:  # many matched keys: index every token once instead of scanning per key
                table: dict[str, list[int]] = {}
                for index, token in enumerate(self.tokens):
                    for token_key in token[3]:
                        table.setdefault(token_key, []).append(index)
                self._positions = table
                found = table.get(key, [])
            self._positions[key] = found
        return found

    def spans_of(self, key: str) -> list[Span]:
        """Spans of the tokens and entities answering to ``key`` (cached: rules share keys)."""
        spans = self._spans.get(key)
        if spans is None:
            tokens = self.tokens
            spans = [(tokens[i][0], tokens[i][1]) for i in self.positions(key)]
            spans.extend(self.field_spans.get(key, ()))
            self._spans[key] = spans
        return spans

    def prefix_spans(self, prefix: str) -> list[Span]:
        spans = self._spans.get(f"{prefix}*")
        if spans is None:
            norms = self.prefix_hits.get(prefix, ())
            spans = [(t[0], t[1]) for t in self.tokens if t[2] in norms]
            self._spans[f"{prefix}*"] = spans
        return spans

    def highlight(self, start: int, end: int) -> Highlight:
        found = self._highlights.get((start, end))
        if found is None:
            found = Highlight(start, end, self.text[start:end])
            self._highlights[(start, end)] = found
        return found

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


def _run_keys(runs: Iterable[str]) -> list[tuple[str, ...]]:
    found = list(map(_RUN_KEYS.get, runs))
    if None in found:
        found = [_RUN_KEYS[run] if keys is None and _run_tokens(run) else keys
                 for run, keys in zip(runs, found, strict=True)]  # fmt: skip
    return found  # type: ignore[return-value]


_SPAN = re.Match.span


def _tokens(visible: str, runs: list[str]) -> list[tuple[int, int, str, tuple[str, ...]]]:
    """Tokens with spans; ``runs`` are ``TOKEN_RE.findall(visible)`` (whose entries are cached).

    Spans come from ``finditer`` mapped in C; a run normalization splits into several tokens
    (rare: a ligature or a compatibility character) gives them all the run's span."""
    spans = list(map(_SPAN, TOKEN_RE.finditer(visible)))
    entries = list(map(_RUN_TOKENS.get, runs))
    if all(entry is not None and len(entry) == 1 for entry in entries):
        return [(s, e, entry[0][0], entry[0][1])  # type: ignore[index]
                for (s, e), entry in zip(spans, entries, strict=True)]  # fmt: skip
    tokens = []
    for (start, end), run in zip(spans, runs, strict=True):
        for norm, keys in _run_tokens(run):
            tokens.append((start, end, norm, keys))
    return tokens


def build_document(
    post: Post,
    enrichment: Enrichment | None = None,
    prefixes_of: Callable[[str], tuple[tuple[str, str], ...]] | None = None,
) -> MatchDocument:
    """Prepare ``post`` for matching. ``prefixes_of(run)`` names the rule prefixes the tokens of
    a run of letters start with, as (prefix, token) pairs (the index supplies it; without it no
    prefix term can match)."""
    visible = _blank(post.text, post.entities)
    runs = TOKEN_RE.findall(visible)
    distinct = list(set(runs))
    # Only the distinct runs matter for the keys; token positions are built on first use
    # (phrases, highlights), which most candidate rules never need.
    keys: set[str] = set().union(*_run_keys(distinct))
    prefix_hits: dict[str, list[str]] = {}  # rule prefix -> the token forms starting with it
    if prefixes_of is not None:
        for hits in map(prefixes_of, distinct):
            for prefix, norm in hits:
                prefix_hits.setdefault(prefix, []).append(norm)
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
        runs=runs,
        keys=keys,
        field_spans=field_spans,
        prefix_hits=prefix_hits,
    )
