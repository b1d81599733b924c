"""Lemmas of Cyrillic tokens (pymorphy3, Russian and Ukrainian dictionaries), cached.

``Лаврову`` → ``лавров``; ``санкций`` → ``санкция``; ``лавровый`` stays apart from ``лавров``.
Only Cyrillic tokens are lemmatized; other scripts match their normalized form exactly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.core.text import is_cyrillic

_analyzers: dict[str, Any] = {}


def _analyzer(lang: str) -> Any:
    analyzer = _analyzers.get(lang)
    if analyzer is None:
        import pymorphy3  # loaded on first use: ~0.3 s and ~15 MB per dictionary

        analyzer = pymorphy3.MorphAnalyzer(lang=lang)
        _analyzers[lang] = analyzer
    return analyzer


@lru_cache(maxsize=200_000)
def lemmas(token: str) -> frozenset[str]:
    """All plausible lemmas of a normalized token (itself for non-Cyrillic tokens).

    A Cyrillic word form may belong to several lemmas (``стали`` is a form of ``сталь`` and of
    ``стать``); matching by any of them keeps recall, and the dictionaries' normal forms keep
    ``лавровый`` apart from ``лавров``. Ukrainian lemmas are added only for words the Russian
    dictionary does not know, so Russian homographs do not pick up Ukrainian readings.
    """
    if not is_cyrillic(token):
        return frozenset((token,))
    found = {token}
    found.update(_normal_form(parse) for parse in _known_parses(token))
    return frozenset(found)


def _normal_form(parse: Any) -> str:
    return str(parse.normal_form).replace("ё", "е")


def _known_parses(token: str) -> list[Any]:
    """Parses of a Cyrillic token from the first dictionary that knows it (Russian, then
    Ukrainian); for a word neither knows, only pymorphy's best guess from the Russian one.

    ``word_is_known`` is a plain dictionary lookup, so an unknown word costs one guessing
    parse instead of two (the Ukrainian guess was never used)."""
    ru = _analyzer("ru")
    if ru.word_is_known(token):
        return [parse for parse in ru.parse(token) if parse.is_known]
    uk = _analyzer("uk")
    if uk.word_is_known(token):
        return [parse for parse in uk.parse(token) if parse.is_known]
    return list(ru.parse(token)[:1])


@lru_cache(maxsize=200_000)
def lemma(token: str) -> str:
    """The single most likely lemma of a normalized token (the token itself if not Cyrillic)."""
    if not is_cyrillic(token):
        return token
    parses = _known_parses(token)
    return _normal_form(parses[0]) if parses else token
