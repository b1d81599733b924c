"""Lemmas: which analyzer reads a word, inflected forms of both languages (dictionary words and
words no dictionary knows), and one parse per word."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.core import morphology
from service.core.morphology import languages, lemma, lemmas
from service.core.text import words


def norm(word: str) -> str:
    (found,) = words(word)
    return found


def matches(query_word: str, text_word: str) -> bool:
    """What a query word asks of a post's token: its lemma among the token's lemmas."""
    return lemma(norm(query_word)) in lemmas(norm(text_word))


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("об'єкта", ("uk",)),  # є
        ("київ", ("uk",)),  # ї
        ("україна", ("uk",)),  # і
        ("ґанок", ("uk",)),  # ґ
        ("лавровый", ("ru",)),  # ы
        ("этот", ("ru",)),  # э
        ("объект", ("ru",)),  # ъ
        ("лавров", ("ru", "uk")),  # neither: both, Russian first
        ("м'ясо", ("ru", "uk")),
        ("їы", ("ru", "uk")),  # both kinds: both
    ],
)
def test_the_letters_pick_the_analyzer(word: str, expected: tuple[str, ...]) -> None:
    assert languages(word) == expected


# (language, part of speech, dictionary form, inflected forms). "unknown": no dictionary has it.
INFLECTIONS = [
    ("ru", "noun", "санкция", ["санкций", "санкциями", "санкции", "санкцию"]),
    ("ru", "noun", "перемирие", ["перемирии", "перемирия", "перемирием"]),
    ("ru", "name", "Лавров", ["Лаврова", "Лаврову", "Лавровым", "Лаврове"]),
    ("ru", "name", "Захарова", ["Захаровой", "Захарову"]),
    ("ru", "adjective", "новый", ["новых", "новыми", "новая", "новую"]),
    ("ru", "verb", "заявить", ["заявил", "заявила", "заявили", "заявит"]),
    ("uk", "noun", "об'єкт", ["об'єкта", "об'єкти", "об'єктів", "об’єктом", "обʼєктах"]),
    ("uk", "noun", "Україна", ["України", "Україні", "Україною", "Україну"]),
    ("uk", "noun", "місто", ["міста", "містах", "місті"]),
    ("uk", "noun", "сім'я", ["сім'ї", "сім’ю", "сімʼєю"]),
    ("uk", "name", "Зеленський", ["Зеленського", "Зеленському", "Зеленським"]),
    ("uk", "adjective", "український", ["української", "українські", "українського"]),
    ("uk", "verb", "заявити", ["заявив", "заявила", "заявили"]),
    ("ru unknown", "name", "Шмыгалёв", ["Шмыгалёва", "Шмыгалёву", "Шмыгалёвым"]),
    ("ru unknown", "noun", "хайпожор", ["хайпожора", "хайпожоры", "хайпожорами"]),
    ("ru unknown", "noun", "зумерша", ["зумерши", "зумершей", "зумершу"]),
    ("uk unknown", "name", "Сирський", ["Сирського", "Сирському", "Сирським"]),
    ("uk unknown", "noun", "шахед", ["шахеди", "шахедів", "шахедами"]),
    ("uk unknown", "noun", "дронобійниця", ["дронобійниці", "дронобійницею", "дронобійницю"]),
    ("uk unknown", "noun", "хайпожерка", ["хайпожерки", "хайпожеркою", "хайпожерці"]),
]


@pytest.mark.parametrize(
    ("language", "kind", "base", "form"),
    [(lang, kind, base, form) for lang, kind, base, forms in INFLECTIONS for form in forms],
)
def test_inflected_forms_match_their_dictionary_form(
    language: str, kind: str, base: str, form: str, unknown_words: None
) -> None:
    assert matches(base, form)


@pytest.mark.parametrize(
    ("language", "base", "forms"),
    [
        (lang, base, forms)
        for lang, kind, base, forms in INFLECTIONS
        if kind in ("noun", "name") and "unknown" not in lang
    ],
)
def test_a_noun_in_any_form_finds_every_other(language: str, base: str, forms: list[str]) -> None:
    """A watch on a dictionary noun or name in any form finds the others (the Ukrainian
    apostrophe nouns in every apostrophe). Only the dictionary form is promised for other words:
    an inflected query word is reduced to its most likely lemma, which for a form both languages
    have is the Russian one (``заявив``: the Russian gerund of ``заявить``)."""
    for query in (base, *forms):
        for form in (base, *forms):
            assert matches(query, form), (query, form)


@pytest.fixture
def unknown_words() -> Iterator[None]:
    """The table's unknown words really are unknown to both dictionaries."""
    for lang, _kind, base, forms in INFLECTIONS:
        if "unknown" in lang:
            for word in (base, *forms):
                assert not any(morphology._known(norm(word), code) for code in ("ru", "uk"))
    yield


LOOK_ALIKES = [
    ("Лавров", "лавровый"),
    ("Лавров", "лавры"),
    ("Лавров", "лаврах"),
    ("лавровый", "Лаврову"),
    ("йод", "иод"),
    ("Київ", "Кий"),
]


@pytest.mark.parametrize(("query", "text"), LOOK_ALIKES)
def test_look_alikes_do_not_match(query: str, text: str) -> None:
    assert not matches(query, text)


def test_issue15_unknown_ukrainian_word_gets_the_ukrainian_guess() -> None:
    """The Russian guesser made ``єктіть`` of ``єктів``; the Ukrainian one gives ``єкт``."""
    assert lemma("єктів") == "єкт"
    assert "єктіть" not in lemmas("єктів")
    assert lemmas("єктів") >= {"єкт"}


def test_issue15_apostrophe_words_of_every_spelling_match_a_watch_on_any_of_them() -> None:
    spellings = [f"об{mark}єкт{ending}" for mark in "'’ʼ" for ending in ("а", "и", "ів")]
    for query in spellings:
        for text in spellings:
            assert matches(query, text), (query, text)


def test_an_inflected_query_word_takes_its_most_likely_lemma() -> None:
    """As docs/rules.md warns: ``заявив`` is also the Russian gerund of ``заявить``, so as a query
    it does not find the Ukrainian infinitive; the dictionary form finds the past tense."""
    assert lemma("заявив") == "заявить"
    assert not matches("заявив", "заявити")
    assert matches("заявити", "заявив")


def test_ambiguous_words_keep_both_readings() -> None:
    # Russian "Лаврову" (Лавров) and Ukrainian "лаврову" (лавровий) are the same letters.
    assert {"лавров", "лавровий"} <= lemmas("лаврову")
    # Russian first for the single lemma of a word both dictionaries know.
    assert lemma("лаврову") == "лавров"


class CountingAnalyzer:
    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        self.parsed: list[str] = []

    def parse(self, word: str) -> Any:
        self.parsed.append(word)
        return self.analyzer.parse(word)

    def word_is_known(self, word: str) -> Any:
        return self.analyzer.word_is_known(word)


def test_issue13_each_new_word_is_parsed_once_per_language(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = {lang: CountingAnalyzer(morphology._analyzer(lang)) for lang in ("ru", "uk")}
    monkeypatch.setattr(morphology, "_analyzers", counting)
    morphology.clear_caches()
    try:
        for word in ("лаврову", "шмыгалевым", "об'єктів", "новыми"):
            lemma(word)
            lemmas(word)
            lemma(word)
            lemmas(word)
        parsed = {lang: sorted(analyzer.parsed) for lang, analyzer in counting.items()}
        assert parsed == {
            "ru": ["лаврову", "новыми", "шмыгалевым"],
            "uk": ["лаврову", "об'єктів"],
        }
    finally:
        morphology.clear_caches()
