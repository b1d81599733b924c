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
    ru = _analyzer("ru").parse(token)
    known = [parse for parse in ru if parse.is_known]
    if not known:
        known = [parse for parse in _analyzer("uk").parse(token) if parse.is_known]
    # Unknown to both dictionaries (a rare surname, a neologism): trust pymorphy's best guess only.
    chosen = known or ru[:1]
    found.update(str(parse.normal_form).replace("ё", "е") for parse in chosen)
    return frozenset(found)


@lru_cache(maxsize=200_000)
def lemma(token: str) -> str:
    """The single most likely lemma of a normalized token (the token itself if not Cyrillic)."""
    if not is_cyrillic(token):
        return token
    parses = _analyzer("ru").parse(token)
    if parses and parses[0].is_known:
        return str(parses[0].normal_form).replace("ё", "е")
    for parse in _analyzer("uk").parse(token):
        if parse.is_known:
            return str(parse.normal_form).replace("ё", "е")
    return str(parses[0].normal_form).replace("ё", "е") if parses else token
