"""Matching holds for every spelling of a word: canonically equivalent and compatibility forms,
format characters, Ukrainian apostrophes; highlights point at the text as written. Regression
tests for the findings of issue 15 ("Detection that holds on harder text")."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest

from service.core.enrich.entities import WatchedMatcher
from service.core.model import WatchedEntity
from service.core.post import Entity, Post
from service.core.query.index import RuleIndex


def post(text: str) -> Post:
    return Post(channel="c", message_id=1, date=datetime(2024, 9, 25, tzinfo=UTC), text=text)


def highlights(query: str, text: str) -> list[str] | None:
    """The highlighted text of the rule's match, or None when it does not match."""
    found = RuleIndex.from_queries([("s", query)]).match(post(text))
    if not found:
        return None
    return [highlight.text for highlight in found[0].highlights]


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# (query, text that must match, what is highlighted)
CANONICAL = [
    ("Зеленський", "Заява Зеленськии\u0306", ["Зеленськии\u0306"]),
    ("Зеленськии\u0306", "Заява Зеленського", ["Зеленського"]),
    ("Київ", "удар по Киі\u0308ву", ["Киі\u0308ву"]),
    ("Киі\u0308в", "удар по Києву", ["Києву"]),
    ("pétrole", nfd("le PÉTROLE monte"), [nfd("PÉTROLE")]),
    (nfd("négociation"), "la négociation", ["négociation"]),
    ('"Сергій Лавров"', nfd("Сергій Лавров"), [nfd("Сергій Лавров")]),
    ("=Зеленський", "Зеленськии\u0306", ["Зеленськии\u0306"]),
    ("зеленськ*", "Зеленськии\u0306", ["Зеленськии\u0306"]),
]


@pytest.mark.parametrize(("query", "text", "expected"), CANONICAL)
def test_issue15_canonically_equivalent_spellings_match(
    query: str, text: str, expected: list[str]
) -> None:
    assert highlights(query, text) == expected


COMPATIBILITY = [
    ("fire", "a ﬁre broke out", ["ﬁre"]),
    ("Lavrov", "𝐋𝐚𝐯𝐫𝐨𝐯 said", ["𝐋𝐚𝐯𝐫𝐨𝐯"]),
    ("Apple", "Ａｐｐｌｅ shares", ["Ａｐｐｌｅ"]),
    ("Лавров", "сказал Лав\u00adрову", ["Лав\u00adрову"]),
    ("Лавров", "сказал Лав\u200dрову", ["Лав\u200dрову"]),
    ("полный", "по\u0301лный провал", ["по\u0301лный"]),
    ("Apple", "Apple™ shares", ["Apple"]),
]


@pytest.mark.parametrize(("query", "text", "expected"), COMPATIBILITY)
def test_issue15_compatibility_forms_and_format_characters_match(
    query: str, text: str, expected: list[str]
) -> None:
    assert highlights(query, text) == expected


APOSTROPHE_FORMS = [f"об{mark}єкт{ending}" for mark in "'’ʼ" for ending in ("а", "и", "ів")]


@pytest.mark.parametrize("query", APOSTROPHE_FORMS)
def test_issue15_ukrainian_apostrophe_words_match_in_every_form_and_spelling(query: str) -> None:
    for form in APOSTROPHE_FORMS:
        text = f"Удари по {form} енергетики."
        assert highlights(query, text) == [form], (query, form)


def test_issue15_a_watched_entity_with_an_apostrophe_is_found_in_every_spelling() -> None:
    matcher = WatchedMatcher([WatchedEntity("marinka", "Мар'їнка", ("Мар'їнка",))])
    for text in ("бої за Мар’їнку", "у Марʼїнці", "біля Мар'їнки", "біля Мар`їнки"):
        (found,) = matcher.find(text)
        assert (found.id, text[found.start : found.end]) == ("marinka", text.split()[-1])


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # Latin script: the apostrophe separates (possessives, contractions, elision).
        ("China", "China's position", True),
        ("O'Neil", "O’Neil said", True),
        ("O'Neil", "O Neil said", True),
        ("Union", "l'Union européenne", True),
        ("don't", "I don't know", True),
        # Cyrillic: it is part of the word, whichever apostrophe.
        ("О'Нил", "заявил О’Нил", True),
        ("О'Нил", "встреча с О'Нилом", True),
        ("Нил", "заявил О’Нил", False),
        ("об'єкт", "об єкт", False),
        # Hyphens separate: a hyphenated query is a phrase, across a hyphen, a space or a line.
        ("будь-який", "будь який", True),
        ("будь-який", "будь-\nякий", True),
        ("Ростов-на-Дону", "Ростове на\nДону", True),
    ],
)
def test_apostrophes_in_latin_and_cyrillic(query: str, text: str, expected: bool) -> None:
    assert (highlights(query, text) is not None) is expected


def test_a_hashtag_query_is_normalized_as_its_entity() -> None:
    text = "Новини #Київ"
    tag = Entity("hashtag", text.index("#"), 5, "#Київ")
    stamped = Post(
        channel="c",
        message_id=1,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        entities=(tag,),
    )
    index = RuleIndex.from_queries([("s", "#Киі\u0308в")])
    assert [match.subscription_id for match in index.match(stamped)] == ["s"]


def test_lavrov_still_matches_and_the_laurel_still_does_not() -> None:
    assert highlights("Лавров", "позвонил Лаврову") == ["Лаврову"]
    assert highlights("Лавров", "лавровый лист") is None
    assert highlights("Лавров", nfd("позвонил Лаврову")) == [nfd("Лаврову")]
