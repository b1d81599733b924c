"""The tree a query parses into (``parser.py``): terms, and NOT/AND/OR over them. Immutable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One token; Cyrillic matches by lemma unless ``exact`` (``=word``)."""

    norm: str
    exact: bool = False
    position: int = 0


@dataclass(frozen=True, slots=True)
class Prefix:
    """``word*``: any token whose normalized form starts with ``norm``."""

    norm: str
    position: int = 0


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive tokens, each matched like a word (or exactly, for ``="..."``)."""

    words: tuple[str, ...]
    exact: bool = False
    position: int = 0


@dataclass(frozen=True, slots=True)
class Field:
    """A field term: ``name`` is tag, cashtag, mention, domain, channel, lang, topic or entity."""

    name: str
    value: str
    position: int = 0


@dataclass(frozen=True, slots=True)
class Regex:
    """``/pattern/`` or ``/pattern/i`` over the raw text, run by RE2 (linear time)."""

    pattern: str
    ignore_case: bool = False
    position: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Term = Word | Prefix | Phrase | Field | Regex
Node = Word | Prefix | Phrase | Field | Regex | Not | And | Or
