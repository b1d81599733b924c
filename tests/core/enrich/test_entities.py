"""Entities: Telegram's, watched ones in any form (and look-alikes that are not), NER."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.core.enrich import Enricher
from service.core.enrich.entities import (
    WatchedMatcher,
    merge_entities,
    telegram_entities,
    url_domain,
)
from service.core.enrich.ner import EnglishNer, NamedEntityRecognizer
from service.core.model import FoundEntity, WatchedEntity
from service.core.post import Entity, Post

LAVROV = WatchedEntity(
    "lavrov", "Sergey Lavrov", ("Sergey Lavrov", "Lavrov", "Лавров", "Сергей Лавров")
)
GAZPROM = WatchedEntity("gazprom", "Gazprom", ("Gazprom", "Газпром"))


def make_post(text: str, entities: tuple[Entity, ...] = ()) -> Post:
    return Post(
        channel="news",
        message_id=7,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        entities=entities,
    )


def span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, len(part)


def test_telegram_entities_with_canonical_forms() -> None:
    text = "#UNGA79 $BTC @MID_Russia x.com/mfa_russia read more"
    entities = tuple(
        Entity(kind, *span(text, part), part, url)
        for kind, part, url in [
            ("hashtag", "#UNGA79", None),
            ("cashtag", "$BTC", None),
            ("mention", "@MID_Russia", None),
            ("url", "x.com/mfa_russia", None),
            ("text_link", "read more", "https://www.mid.ru/en/foreign_policy/"),
            ("bold", "read", None),
        ]
    )
    found = telegram_entities(make_post(text, entities))
    assert [(e.type, e.canonical) for e in found] == [
        ("hashtag", "unga79"),
        ("cashtag", "btc"),
        ("mention", "mid_russia"),
        ("url", "x.com"),
        ("url", "mid.ru"),
    ]
    assert all(text[e.start : e.end] == e.text for e in found)


@pytest.mark.parametrize(
    ("url", "domain"),
    [("https://WWW.Example.com/a?b", "example.com"), ("t.me/s/channel", "t.me"), ("", None)],
)
def test_url_domain(url: str, domain: str | None) -> None:
    assert url_domain(url) == domain


@pytest.mark.parametrize(
    "text",
    [
        "Сергей Лавров прибыл в Нью-Йорк",
        "Журналисты обратились к Лаврову с вопросом",
        "Встреча Сергея Лаврова с Ван И",
        "Переговоры с Лавровым продлились час",
        "Sergey Lavrov arrived in New York",
        "Lavrov's remarks at the UN",
        "LAVROV: the West is lying",
    ],
)
def test_watched_entity_in_any_form_is_one_id(text: str) -> None:
    found = WatchedMatcher([LAVROV, GAZPROM]).find(text)
    assert [(e.id, e.canonical) for e in found] == [("lavrov", "Sergey Lavrov")]
    assert text[found[0].start : found[0].end] == found[0].text


def test_full_name_is_one_mention_not_two() -> None:
    found = WatchedMatcher([LAVROV]).find("Сергею Лаврову вручили орден")
    assert [e.text for e in found] == ["Сергею Лаврову"]


@pytest.mark.parametrize(
    "text",
    [
        "Добавьте лавровый лист и перец",
        "Суп с лавровым листом",
        "Лавровый венок победителя",
        "Почивать на лаврах",
        "Lavrovsky Lane in Moscow",
        "Сергей Иванов заявил",
        "газпромовский офис",
    ],
)
def test_look_alikes_are_not_watched_entities(text: str) -> None:
    assert WatchedMatcher([LAVROV, GAZPROM]).find(text) == []


def test_lowercase_alias_matches_any_case() -> None:
    watched = WatchedEntity("sanctions", "Sanctions", ("санкции",))
    found = WatchedMatcher([watched]).find("Новые САНКЦИИ и старые санкциями")
    assert len(found) == 2


def test_with_watched_shares_the_loaded_parts(enricher: Enricher) -> None:
    other = enricher.with_watched([LAVROV])
    assert other.language is enricher.language and other.topics is enricher.topics
    result = other.enrich(make_post("Заявление Лаврову передали послы"))
    assert result.entity_ids == {"lavrov"}
    assert enricher.enrich(make_post("Заявление Лаврову передали послы")).entity_ids == set()


def test_enrich_without_ner_reports_telegram_and_watched(enricher: Enricher) -> None:
    text = "#UNGA79 Sergey Lavrov met Wang Yi in New York"
    post = make_post(text, (Entity("hashtag", 0, 7, "#UNGA79"),))
    result = enricher.with_watched([LAVROV]).enrich(post)
    assert [e.type for e in result.entities] == ["hashtag", "PER"]
    assert result.lang == "en"


def test_watched_mention_takes_the_ner_type_and_replaces_the_span() -> None:
    named = [FoundEntity("ORG", "Газпрома", 10, 18, "Газпром")]
    watched = [FoundEntity("PER", "Газпрома", 10, 18, "Gazprom", "gazprom")]
    merged = merge_entities([], named, watched)
    assert merged == (FoundEntity("ORG", "Газпрома", 10, 18, "Gazprom", "gazprom"),)


def test_russian_ner_gives_nominative_canonical_forms(recognizer: NamedEntityRecognizer) -> None:
    text = "Глава МИД передал привет Сергею Лаврову и Марии Захаровой из Нью-Йорка."
    found = {(e.type, e.canonical) for e in recognizer.entities(text, "ru")}
    assert ("PER", "Сергей Лавров") in found
    assert ("PER", "Мария Захарова") in found
    assert ("LOC", "Нью-Йорк") in found
    assert ("ORG", "МИД") in found


def test_english_heuristic_ner(recognizer: NamedEntityRecognizer) -> None:
    text = (
        "Russia's Foreign Minister Sergey Lavrov and Foreign Minister of China Wang Yi met at "
        "the UN General Assembly in New York. The Federal Security Service said nothing."
    )
    found = [(e.type, e.text) for e in recognizer.entities(text, "en")]
    assert found == [
        ("LOC", "Russia"),
        ("PER", "Sergey Lavrov"),
        ("LOC", "China"),
        ("PER", "Wang Yi"),
        ("ORG", "UN General Assembly"),
        ("LOC", "New York"),
        ("ORG", "Federal Security Service"),
    ]


def test_ner_only_for_chosen_languages(recognizer: NamedEntityRecognizer) -> None:
    assert recognizer.entities("Emmanuel Macron est arrivé à Moscou", "fr") == []
    assert recognizer.entities("Emmanuel Macron arrived in Moscow", None) == []
    english_only = NamedEntityRecognizer(("en",))
    assert english_only.entities("Сергей Лавров прибыл в Москву", "ru") == []
    with pytest.raises(ValueError, match="NER supports"):
        NamedEntityRecognizer(("de",))


def test_english_ner_skips_unknown_capitalized_words() -> None:
    assert EnglishNer().entities("Yesterday Nothing Happened Here, said Someone.") == []
