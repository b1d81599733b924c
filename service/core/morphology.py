"""Lemmas of Cyrillic tokens (pymorphy3, Russian and Ukrainian dictionaries), each word parsed
once per language and cached.

``Лаврову`` → ``лавров``; ``санкций`` → ``санкция``; ``об'єктів`` → ``об'єкт``; ``лавровый``
stays apart from ``лавров``. Only Cyrillic tokens are lemmatized; other scripts match their
normalized form exactly.

Which analyzer reads a word is decided by its letters (``languages``): ``є і ї ґ`` are
Ukrainian only, ``ы э ъ`` (and ``ё``, folded to ``е`` before this) Russian only; a word with
neither (``Лавров``, ``рада``, ``м'ясо``) is read by both. A word is analysed by the
dictionaries of its languages that know it; a word none of them knows is analysed by the
guessers of its languages (so an unknown Ukrainian word is guessed as Ukrainian).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.core.text import is_cyrillic

_analyzers: dict[str, Any] = {}

UKRAINIAN_LETTERS = frozenset("єіїґ")
RUSSIAN_LETTERS = frozenset("ыэъё")
# Lemmas per (word, language) kept per process: words repeat across posts.
CACHE_SIZE = 200_000


def _analyzer(lang: str) -> Any:
    analyzer = _analyzers.get(lang)
    if analyzer is None:
        import pymorphy3  # loaded on first use: ~0.3 s and ~15 MB per dictionary

        analyzer = pymorphy3.MorphAnalyzer(lang=lang)
        _analyzers[lang] = analyzer
    return analyzer


def languages(token: str) -> tuple[str, ...]:
    """The analyzers that read a normalized Cyrillic token, by its letters: ("uk",) for a word
    with a Ukrainian-only letter, ("ru",) for one with a Russian-only letter, else both (Russian
    first). A word with letters of both kinds is read by both."""
    letters = set(token)
    ukrainian = not UKRAINIAN_LETTERS.isdisjoint(letters)
    russian = not RUSSIAN_LETTERS.isdisjoint(letters)
    if ukrainian and not russian:
        return ("uk",)
    if russian and not ukrainian:
        return ("ru",)
    return ("ru", "uk")


@lru_cache(maxsize=CACHE_SIZE)
def _known(token: str, lang: str) -> bool:
    """Whether the dictionary of ``lang`` has the word (a lookup, no parse)."""
    return bool(_analyzer(lang).word_is_known(token))


@lru_cache(maxsize=CACHE_SIZE)
def _lemmas_in(token: str, lang: str) -> tuple[str, ...]:
    """The lemmas one analyzer gives a word, most likely first: the dictionary's readings of a
    known word; every lemma the guesser offers for an unknown one, the word itself first when it
    is one of them (a query names a thing in its dictionary form: ``Шмыгалёв`` is the surname,
    not a form of a guessed verb). The one parse of (word, language)."""
    parses = _analyzer(lang).parse(token)
    if _known(token, lang):
        forms = [_normal_form(parse) for parse in parses if parse.is_known]
    else:
        forms = [_normal_form(parse) for parse in parses]
        if token in forms:
            forms.insert(0, token)
    return tuple(dict.fromkeys(forms)) or (token,)


def _normal_form(parse: Any) -> str:
    return str(parse.normal_form).replace("ё", "е")


def _readers(token: str) -> tuple[str, ...]:
    """The languages whose analysis counts: those of the word's letters that know it, else all
    of them (each guesses)."""
    candidates = languages(token)
    known = tuple(lang for lang in candidates if _known(token, lang))
    return known or candidates


@lru_cache(maxsize=CACHE_SIZE)
def lemmas(token: str) -> frozenset[str]:
    """All plausible lemmas of a normalized token, and the token itself (only itself for a
    non-Cyrillic token).

    A word form may belong to several lemmas (``стали`` is a form of ``сталь`` and of ``стать``;
    ``лаврову`` of the Russian ``лавров`` and the Ukrainian ``лавровий``); matching by any of
    them keeps recall, and the dictionaries' normal forms keep ``лавровый`` apart from
    ``лавров``."""
    if not is_cyrillic(token):
        return frozenset((token,))
    found = {token}
    for lang in _readers(token):
        found.update(_lemmas_in(token, lang))
    return frozenset(found)


@lru_cache(maxsize=CACHE_SIZE)
def lemma(token: str) -> str:
    """The single most likely lemma of a normalized token (the token itself if not Cyrillic):
    the first reading of the first of its languages that knows it (Russian before Ukrainian for
    a word both could be), else that first language's guess. One of ``lemmas(token)``."""
    if not is_cyrillic(token):
        return token
    return _lemmas_in(token, _readers(token)[0])[0]


def clear_caches() -> None:
    """Forget every analysis (benchmarks measure a cold process with it)."""
    for cached in (_known, _lemmas_in, lemmas, lemma):
        cached.cache_clear()
