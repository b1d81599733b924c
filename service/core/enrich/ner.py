"""Named entities (PER, ORG, LOC): natasha for Russian, a gazetteer heuristic for English.

Russian uses natasha's statistical NER (slovnet; the models ship inside the PyPI packages, no
download) and natasha's normalization for canonical forms (``Сергея Лаврова`` → ``Сергей
Лавров``). Loading costs ~1 s and ~100 MB, so it happens on first use; tagging costs a few ms to
tens of ms per paragraph, which is why NER is switchable and limited to chosen languages.

English: no statistical English NER installs from PyPI and runs offline here (spaCy's model
packages are not on PyPI, flair/stanza/gliner fetch their models from a hub at run time). English
therefore uses a documented heuristic: capitalized word sequences, classified by a gazetteer
(``service/data/ner_en.yaml``: places, organisations, people), organisation head words
(``... Ministry``), person titles (``Foreign Minister Sergey Lavrov``) and first names.
Unknown capitalized sequences are left out: precision over recall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

from service.core.model import FoundEntity

NER_LANGUAGES: tuple[str, ...] = ("ru", "en")
_NATASHA_TYPES = {"PER": "PER", "ORG": "ORG", "LOC": "LOC"}


class RussianNer:
    """natasha's NER and normalization, loaded on the first call."""

    @cached_property
    def _parts(self) -> tuple[Any, Any, Any, Any]:
        from natasha import MorphVocab, NewsEmbedding, NewsMorphTagger, NewsNERTagger, Segmenter

        embedding = NewsEmbedding()
        return Segmenter(), MorphVocab(), NewsMorphTagger(embedding), NewsNERTagger(embedding)

    def load(self) -> None:
        """Load the models now (a worker may do this at start-up instead of on its first post)."""
        _ = self._parts

    def entities(self, text: str) -> list[FoundEntity]:
        from natasha import Doc

        segmenter, vocab, morph_tagger, ner_tagger = self._parts
        doc = Doc(text)
        doc.segment(segmenter)
        doc.tag_ner(ner_tagger)
        if not doc.spans:
            return []
        doc.tag_morph(morph_tagger)
        found: list[FoundEntity] = []
        for span in doc.spans:
            kind = _NATASHA_TYPES.get(span.type)
            if kind is None:
                continue
            span.normalize(vocab)
            canonical = span.normal or span.text
            found.append(FoundEntity(kind, span.text, span.start, span.stop, canonical))
        return found


# A capitalized word: an uppercase letter, then letters, digits, hyphens or inner apostrophes.
_WORD = r"[A-Z\u00C0-\u00DE][\w\u00C0-\u024F]*(?:[-'’][\w\u00C0-\u024F]+)*"
# Lowercase words allowed inside a name ("Bank of England", "Saint Vincent and the Grenadines").
_CONNECTORS = r"(?:of|the|and|for|de|du|la|von|der|al|bin)"
_SEQUENCE_RE = re.compile(rf"(?<![\w@#$]){_WORD}(?:\s+(?:{_CONNECTORS}\s+)*{_WORD})*")
_TOKEN_RE = re.compile(rf"{_WORD}|{_CONNECTORS}\b")
_POSSESSIVE_RE = re.compile(r"['’]s$")
# What may come before a capitalized word that starts a sentence (so is not a name by its case).
_SENTENCE_START_RE = re.compile(
    r"(?:^|[.!?:;\n\"«“(•—–-]\s*|[\U0001F000-\U0001FFFF\u2600-\u27BF]\s*)$"
)
# Sentence-initial words that are never the start of a name ("The Federal Security Service").
_LEADING_WORDS = frozenset({"The", "A", "An", "This", "That", "These", "Those", "In", "On", "At"})
# Longest gazetteer entry tried, in words.
_MAX_NAME_WORDS = 6


@dataclass(frozen=True, slots=True)
class Gazetteer:
    locations: frozenset[str]
    organisations: frozenset[str]
    people: frozenset[str]
    organisation_heads: frozenset[str]
    person_titles: frozenset[str]
    first_names: frozenset[str]
    non_names: frozenset[str]

    @classmethod
    def load_default(cls) -> Gazetteer:
        text = resources.files("service").joinpath("data", "ner_en.yaml").read_text("utf-8")
        data = yaml.safe_load(text)

        def entries(key: str) -> frozenset[str]:
            return frozenset(str(item) for item in data[key])

        return cls(
            locations=entries("locations"),
            organisations=entries("organisations"),
            people=entries("people"),
            organisation_heads=entries("organisation_heads"),
            person_titles=entries("person_titles"),
            first_names=entries("first_names"),
            non_names=entries("non_names"),
        )

    def lookup(self, name: str) -> str | None:
        if name in self.locations:
            return "LOC"
        if name in self.organisations:
            return "ORG"
        if name in self.people:
            return "PER"
        return None


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    start: int
    end: int

    @property
    def is_connector(self) -> bool:
        return self.text[0].islower()


class EnglishNer:
    """The capitalized-sequence + gazetteer heuristic for English described above.

    Within each run of capitalized words (joined by ``of``, ``the``...; a possessive ends a run):
    the longest gazetteer entry at a position wins; a first name starts a person; the words after
    a title (``Minister``) are a person; words ending in an organisation head (``... Ministry``)
    are an organisation; a lone acronym inside a sentence is an organisation.
    """

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self.gazetteer = gazetteer or Gazetteer.load_default()

    def entities(self, text: str) -> list[FoundEntity]:
        found: list[FoundEntity] = []
        for match in _SEQUENCE_RE.finditer(text):
            words: list[_Word] = []
            for token in _TOKEN_RE.finditer(match.group()):
                value = _POSSESSIVE_RE.sub("", token.group())
                start = match.start() + token.start()
                words.append(_Word(value, start, start + len(value)))
                if value != token.group():
                    found.extend(self._run(text, words))
                    words = []
            found.extend(self._run(text, words))
        return found

    def _gazetteer_at(self, words: list[_Word], j: int) -> tuple[str, int] | None:
        for k in range(min(len(words), j + _MAX_NAME_WORDS) - 1, j - 1, -1):
            if words[k].is_connector:
                continue
            kind = self.gazetteer.lookup(" ".join(word.text for word in words[j : k + 1]))
            if kind is not None:
                return kind, k
        return None

    def _run(self, text: str, words: list[_Word]) -> list[FoundEntity]:
        while words and words[-1].is_connector:
            words = words[:-1]
        gaz = self.gazetteer
        found: list[FoundEntity] = []

        def emit(kind: str, first: int, last: int) -> None:
            start, end = words[first].start, words[last].end
            canonical = " ".join(word.text for word in words[first : last + 1])
            found.append(FoundEntity(kind, text[start:end], start, end, canonical))

        after_title = False
        j = 0
        while j < len(words):
            word = words[j]
            if word.is_connector:
                j += 1
                continue
            hit = self._gazetteer_at(words, j)
            if hit is not None:
                emit(hit[0], j, hit[1])
                j, after_title = hit[1] + 1, False
                continue
            if word.text.rstrip(".") in gaz.person_titles:
                j, after_title = j + 1, True
                continue
            if after_title or word.text in gaz.first_names:
                last = j
                while last + 1 < len(words) and last - j < 3 and not words[last + 1].is_connector:
                    last += 1
                # A first name and a surname; or the words closing a run after a title
                # ("Foreign Minister Lavrov"), not a title's own words ("Deputy Permanent ...").
                names = words[j : last + 1]
                if ((word.text in gaz.first_names and last > j) or last + 1 == len(words)) and not (
                    any(name.text in gaz.non_names for name in names)
                ):
                    emit("PER", j, last)
                    j, after_title = last + 1, False
                    continue
            after_title = False
            if word.text in _LEADING_WORDS:
                j += 1
                continue
            head = self._organisation_end(words, j)
            if head is not None:
                emit("ORG", j, head)
                j = head + 1
                continue
            prefix = text[max(0, word.start - 3) : word.start]
            if (
                len(words) == 1
                and word.text.isupper()
                and 2 <= len(word.text) <= 6
                and _SENTENCE_START_RE.search(prefix) is None
            ):
                emit("ORG", j, j)
            j += 1
        return found

    def _organisation_end(self, words: list[_Word], j: int) -> int | None:
        """The last word of an organisation name starting at ``j`` (ending in a head word)."""
        heads = self.gazetteer.organisation_heads
        for k in range(min(len(words), j + _MAX_NAME_WORDS) - 1, j, -1):
            if words[k].text not in heads:
                continue
            inner = range(j + 1, k + 1)
            if any(self._gazetteer_at(words, m) for m in inner if not words[m].is_connector):
                return None
            return k
        return None


class NamedEntityRecognizer:
    """NER for the chosen languages; models load on first use and are shared by copies."""

    def __init__(self, languages: tuple[str, ...] = NER_LANGUAGES) -> None:
        unsupported = set(languages) - set(NER_LANGUAGES)
        if unsupported:
            raise ValueError(
                f"NER supports {', '.join(NER_LANGUAGES)}, not {', '.join(sorted(unsupported))}"
            )
        self.languages = languages
        self._russian = RussianNer()
        self._english: EnglishNer | None = None

    def load(self) -> None:
        if "ru" in self.languages:
            self._russian.load()
        if "en" in self.languages and self._english is None:
            self._english = EnglishNer()

    def entities(self, text: str, lang: str | None) -> list[FoundEntity]:
        """PER/ORG/LOC spans of ``text`` when ``lang`` is one of the chosen languages."""
        if lang not in self.languages:
            return []
        if lang == "ru":
            return self._russian.entities(text)
        if self._english is None:
            self._english = EnglishNer()
        return self._english.entities(text)
