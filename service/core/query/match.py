"""Match one post against compiled rules: the post as a MatchDocument, rule nodes, highlights.

A post is turned into a document once: its visible text with ``url``/``email``/``mention`` spans
blanked, tokens with their match keys (a Cyrillic token's lemmas, its exact form as ``=form``;
other tokens their normalized form), and field keys (``#tag``, ``$ticker``, ``@name``,
``domain:host`` for the host and each parent domain, ``channel:``, ``lang:``, ``topic:``,
``entity:``). Rule nodes test themselves against that document; only candidate rules are tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from service import constants
from service.core.model import Enrichment, Highlight
from service.core.morphology import lemma, lemmas
from service.core.post import Entity, Post
from service.core.text import TOKEN_RE, is_cyrillic, normalize, normalize_host, run_norms

Span = tuple[int, int]
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
        "_by_norm",
        "_highlights",
        "_positions",
        "_raw",
        "_regex",
        "_spans",
        "field_spans",
        "keys",
        "prefix_hits",
        "text",
        "tokens",
    )

    def __init__(
        self,
        text: str,
        tokens: list[tuple[int, int, str, tuple[str, ...]]],
        keys: set[str],
        field_spans: dict[str, list[Span]],
        prefix_hits: dict[str, list[str]],
    ) -> None:
        self.text = text
        self.tokens = tokens  # (start, end, norm, keys) in text order
        self.keys = keys
        self.field_spans = field_spans
        self.prefix_hits = prefix_hits
        self._positions: dict[str, list[int]] | None = None
        self._raw: bytes | None = None
        self._regex: dict[int, bool] = {}
        self._spans: dict[str, list[Span]] = {}
        self._by_norm: dict[str, list[int]] | None = None
        self._highlights: dict[Span, Highlight] = {}

    def positions(self, key: str) -> list[int]:
        """Indices of the tokens that answer to ``key`` (built on first use)."""
        if self._positions is None:
            table: dict[str, list[int]] = {}
            for index, token in enumerate(self.tokens):
                for token_key in token[3]:
                    table.setdefault(token_key, []).append(index)
            self._positions = table
        return self._positions.get(key, [])

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
            tokens = self.tokens
            spans = sorted(
                (tokens[i][0], tokens[i][1])
                for norm in self.prefix_hits.get(prefix, ())
                for i in self._norm_positions().get(norm, ())
            )
            self._spans[f"{prefix}*"] = spans
        return spans

    def _norm_positions(self) -> dict[str, list[int]]:
        if self._by_norm is None:
            by_norm: dict[str, list[int]] = {}
            for index, token in enumerate(self.tokens):
                by_norm.setdefault(token[2], []).append(index)
            self._by_norm = by_norm
        return self._by_norm

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
    spans = [(e.offset, e.end) for e in entities if e.type in BLANKED_ENTITIES and e.length > 0]
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for index in range(max(start, 0), min(end, len(chars))):
            chars[index] = " "
    return "".join(chars)


@lru_cache(maxsize=200_000)
def _run_tokens(run: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((norm, token_keys(norm)) for norm in run_norms(run))


def build_document(
    post: Post,
    enrichment: Enrichment | None = None,
    prefixes_of: Callable[[str], tuple[str, ...]] | None = None,
) -> MatchDocument:
    """Prepare ``post`` for matching. ``prefixes_of(norm)`` names the rule prefixes a token
    starts with (the index supplies it; without it no prefix term can match)."""
    visible = _blank(post.text, post.entities)
    tokens: list[tuple[int, int, str, tuple[str, ...]]] = []
    keys: set[str] = set()
    norms: set[str] = set()
    for found in TOKEN_RE.finditer(visible):
        start, end = found.span()
        for norm, token_keys_ in _run_tokens(found.group()):
            tokens.append((start, end, norm, token_keys_))
            keys.update(token_keys_)
            norms.add(norm)
    prefix_hits: dict[str, list[str]] = {}  # rule prefix -> the token forms starting with it
    if prefixes_of is not None:
        for norm in norms:
            for prefix in prefixes_of(norm):
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
    return MatchDocument(post.text, tokens, keys, field_spans, prefix_hits)


# --- rule nodes -------------------------------------------------------------------------------


class RuleNode:
    """A compiled query node: ``test`` says whether it holds; ``spans`` where (when it holds)."""

    __slots__ = ()

    def test(self, doc: MatchDocument) -> bool:
        raise NotImplementedError

    def spans(self, doc: MatchDocument) -> list[Span]:
        return []


class KeyAtom(RuleNode):
    """A word (by lemma or exact form) or a field, both plain keys of the document."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, doc: MatchDocument) -> bool:
        return self.key in doc.keys

    def spans(self, doc: MatchDocument) -> list[Span]:
        return doc.spans_of(self.key)


class PrefixAtom(RuleNode):
    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def test(self, doc: MatchDocument) -> bool:
        return self.prefix in doc.prefix_hits

    def spans(self, doc: MatchDocument) -> list[Span]:
        return doc.prefix_spans(self.prefix)


class PhraseAtom(RuleNode):
    """Consecutive tokens answering to ``keys`` in order."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def _starts(self, doc: MatchDocument, first_only: bool) -> list[int]:
        keys = self.keys
        if any(key not in doc.keys for key in keys):
            return []
        tokens = doc.tokens
        found: list[int] = []
        for start in doc.positions(keys[0]):
            if start + len(keys) > len(tokens):
                break
            if all(keys[i] in tokens[start + i][3] for i in range(1, len(keys))):
                found.append(start)
                if first_only:
                    break
        return found

    def test(self, doc: MatchDocument) -> bool:
        return bool(self._starts(doc, first_only=True))

    def spans(self, doc: MatchDocument) -> list[Span]:
        last = len(self.keys) - 1
        return [(doc.tokens[i][0], doc.tokens[i + last][1]) for i in self._starts(doc, False)]


class RegexAtom(RuleNode):
    __slots__ = ("regex",)

    def __init__(self, regex: Any) -> None:
        self.regex = regex

    def test(self, doc: MatchDocument) -> bool:
        return doc.regex_found(self.regex)

    def spans(self, doc: MatchDocument) -> list[Span]:
        return doc.regex_spans(self.regex)


class AllOf(RuleNode):
    __slots__ = ("children", "keys", "others")

    def __init__(self, children: tuple[RuleNode, ...]) -> None:
        self.children = children
        # Plain keys are tested inline, first: a set lookup is the cheapest way to fail early.
        self.keys = tuple(child.key for child in children if isinstance(child, KeyAtom))
        self.others = tuple(child for child in children if not isinstance(child, KeyAtom))

    def test(self, doc: MatchDocument) -> bool:
        keys = doc.keys
        # Explicit loops are ~2x faster than all(<generator>) on this hot path.
        for key in self.keys:  # noqa: SIM110
            if key not in keys:
                return False
        for child in self.others:  # noqa: SIM110
            if not child.test(doc):
                return False
        return True


class AnyOf(RuleNode):
    __slots__ = ("children",)

    def __init__(self, children: tuple[RuleNode, ...]) -> None:
        self.children = children

    def test(self, doc: MatchDocument) -> bool:
        for child in self.children:  # noqa: SIM110 - faster than any(<generator>), as above
            if child.test(doc):
                return True
        return False


class NotOf(RuleNode):
    __slots__ = ("child",)

    def __init__(self, child: RuleNode) -> None:
        self.child = child

    def test(self, doc: MatchDocument) -> bool:
        return not self.child.test(doc)


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """A subscription whose query holds for a post, with the spans of its matched terms."""

    subscription_id: str
    highlights: tuple[Highlight, ...] = ()


def highlights(node: RuleNode, doc: MatchDocument) -> tuple[Highlight, ...]:
    """The spans of the positive terms that made ``node`` (which holds) true, in text order."""
    if isinstance(node, KeyAtom):  # the commonest rule, a single word: no merging needed
        found = doc.spans_of(node.key)
        if len(found) <= 1:
            return tuple(doc.highlight(start, end) for start, end in found if end > start)
    spans: list[Span] = []

    def collect(item: RuleNode) -> None:
        if isinstance(item, AllOf):
            for child in item.children:
                collect(child)
        elif isinstance(item, AnyOf):
            for child in item.children:
                if child.test(doc):
                    collect(child)
        elif not isinstance(item, NotOf):
            spans.extend(item.spans(doc))

    collect(node)
    merged: list[list[int]] = []
    for start, end in sorted(set(spans)):
        if end <= start:
            continue
        if merged and start < merged[-1][1]:  # overlapping ("Sergey Lavrov" and "Lavrov")
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(doc.highlight(start, end) for start, end in merged[: constants.HIGHLIGHTS_MAX])
