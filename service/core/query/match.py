"""Match one post against compiled rules: rule nodes that test a MatchDocument, and highlights.

Rule nodes test themselves against a post's document (``document.py``); the index evaluates only
the candidate rules a post's keys wake (most of them as flat key conditions, ``plan.py``), and a
rule that holds yields a Match whose highlights, the spans of its positive terms, are computed
on first access.
"""

from __future__ import annotations

from typing import Any

from service import constants
from service.core.model import Highlight
from service.core.query.document import (
    MatchDocument,
    Span,
    build_document,
    field_key,
    prefix_key,
    token_keys,
    word_key,
)

__all__ = [
    "AllOf",
    "AnyKeys",
    "AnyOf",
    "KeyAtom",
    "Match",
    "MatchDocument",
    "NotOf",
    "PhraseAtom",
    "PrefixAtom",
    "RegexAtom",
    "RuleNode",
    "build_document",
    "field_key",
    "highlights",
    "token_keys",
    "word_key",
]


# --- rule nodes -------------------------------------------------------------------------------


class RuleNode:
    """A compiled query node: ``test`` says whether it holds; ``spans`` where (when it holds)."""

    __slots__ = ()

    def test(self, doc: MatchDocument) -> bool:
        # Every concrete node overrides this; a plain class, not an ABC, because isinstance
        # checks on ABCs cost more and nodes are tested on every post.
        raise TypeError(f"{type(self).__name__} does not define test()")

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
    """``word*``: the document has the key ``*word`` when one of its tokens starts with it."""

    __slots__ = ("key", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.key = prefix_key(prefix)

    def test(self, doc: MatchDocument) -> bool:
        return self.key in doc.keys

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
        sequence = doc.sequence
        found: list[int] = []
        for start in doc.positions(keys[0]):
            if start + len(keys) > len(sequence):
                break
            if all(keys[i] in sequence[start + i] for i in range(1, len(keys))):
                found.append(start)
                if first_only:
                    break
        return found

    def test(self, doc: MatchDocument) -> bool:
        return bool(self._starts(doc, first_only=True))

    def spans(self, doc: MatchDocument) -> list[Span]:
        last = len(self.keys) - 1
        return [(doc.tokens[i][0], doc.tokens[i + last][1]) for i in self._starts(doc, False)]


class AnyKeys(RuleNode):
    """Any of several plain keys (words, fields, ``*prefix``): what an OR of them tests, with
    the spans of every key present. The index highlights rules made only of keys with one."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def test(self, doc: MatchDocument) -> bool:
        return not doc.keys.isdisjoint(self.keys)

    def spans(self, doc: MatchDocument) -> list[Span]:
        return [span for key in self.keys for span in doc.spans_of(key)]


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
        for key in self.keys:
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


class Match:
    """A subscription whose query holds for a post, with the spans of its matched terms.

    ``Match(id, highlights)`` carries its highlights; the index builds ``Match(id, node=rule,
    doc=document)``, whose highlights are computed on first access and then kept (the rule and
    document are let go), so the matches nobody looks at cost no highlights. Treat as immutable.
    """

    __slots__ = ("_doc", "_highlights", "_node", "subscription_id")

    def __init__(
        self,
        subscription_id: str,
        highlights: tuple[Highlight, ...] = (),
        *,
        node: RuleNode | None = None,
        doc: MatchDocument | None = None,
    ) -> None:
        self.subscription_id = subscription_id
        self._highlights = highlights
        self._node = node if doc is not None else None
        self._doc = doc

    @property
    def highlights(self) -> tuple[Highlight, ...]:
        node, doc = self._node, self._doc
        if node is not None and doc is not None:
            self._highlights = highlights(node, doc)
            self._node = self._doc = None
        return self._highlights

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Match):
            return NotImplemented
        return (self.subscription_id, self.highlights) == (other.subscription_id, other.highlights)

    def __hash__(self) -> int:
        return hash((self.subscription_id, self.highlights))

    def __repr__(self) -> str:
        return f"Match(subscription_id={self.subscription_id!r}, highlights={self.highlights!r})"


def highlights(node: RuleNode, doc: MatchDocument) -> tuple[Highlight, ...]:
    """The spans of the positive terms that made ``node`` (which holds) true, in text order."""
    if isinstance(node, KeyAtom):  # a single word: rules share them, so kept per document
        found = doc.key_highlights(node.key)
        if found is None:
            found = _highlights(node, doc)
            doc.remember_highlights(node.key, found)
        return found
    return _highlights(node, doc)


def _collect_spans(item: RuleNode, doc: MatchDocument, spans: list[Span]) -> None:
    """The spans of the positive terms that hold under ``item`` (a plain function: a recursive
    closure would be a reference cycle left for the garbage collector, per match)."""
    if isinstance(item, AllOf):
        for child in item.children:
            _collect_spans(child, doc, spans)
    elif isinstance(item, AnyOf):
        for child in item.children:
            if child.test(doc):
                _collect_spans(child, doc, spans)
    elif not isinstance(item, NotOf):
        spans.extend(item.spans(doc))


def _highlights(node: RuleNode, doc: MatchDocument) -> tuple[Highlight, ...]:
    spans: list[Span]
    if isinstance(node, KeyAtom | AnyKeys | PrefixAtom):  # no tree to walk
        spans = node.spans(doc)
        if len(spans) <= 1:  # the commonest case: no merging needed
            return tuple(doc.highlight(start, end) for start, end in spans if end > start)
    else:
        spans = []
        _collect_spans(node, doc, spans)
    merged: list[list[int]] = []
    for start, end in sorted(set(spans)):
        if end <= start:
            continue
        if merged and start < merged[-1][1]:  # overlapping ("Sergey Lavrov" and "Lavrov")
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(doc.highlight(start, end) for start, end in merged[: constants.HIGHLIGHTS_MAX])
