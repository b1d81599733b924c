"""Matching: every operator, field and normalization, with look-alikes that must not match."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.core.model import Enrichment, FoundEntity, TopicScore, WatchedEntity
from service.core.post import Entity, Post
from service.core.query.index import RuleIndex

LAVROV = WatchedEntity("lavrov", "Sergey Lavrov", ("Sergey Lavrov", "Лавров", "Сергей Лавров"))


def make_post(text: str, *entities: Entity, channel: str = "mfa_russia") -> Post:
    return Post(
        channel=channel,
        message_id=1,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        entities=entities,
    )


def entity(text: str, type_: str, fragment: str, url: str | None = None) -> Entity:
    offset = text.index(fragment)
    return Entity(type_, offset, len(fragment), fragment, url=url)


def matches(query: str, post: Post, enrichment: Enrichment | None = None) -> bool:
    index = RuleIndex.from_queries([("s", query)], [LAVROV])
    return [m.subscription_id for m in index.match(post, enrichment)] == ["s"]


# (query, text, expected)
TEXT_CASES = [
    # Words: case-insensitive, whole tokens only.
    ("ceasefire", "A CEASEFIRE was agreed", True),
    ("ceasefire", "ceasefires were agreed", False),
    ("fire", "a ceasefire", False),
    # Latin diacritics fold, in the text and in the query.
    ("pétrole", "le petrole monte", True),
    ("petrole", "le PÉTROLE monte", True),
    ("cafe", "un café", True),
    # ё is е; й is not и.
    ("елка", "Ёлка", True),
    ("йод", "иод", False),
    # Punctuation splits tokens.
    ("cessez-le-feu", "un cessez le feu fragile", True),
    ('"cessez le feu"', "le cessez-le-feu tient", True),
    ("cessez-le-feu", "cessez, dit-il, le feu", False),
    ("China's", "China s", True),
    ("china", "China's position", True),
    # Russian by lemma.
    ("Лавров", "встреча с Лавровым", True),
    ("Лавров", "позвонил Лаврову", True),
    ("Лавров", "слова Лаврова", True),
    ("Лавров", "лавровый лист", False),
    ("Лавров", "почивать на лаврах, лавры", False),
    ("санкции", "новых санкций", True),
    ("санкция", "пакет санкций", True),
    ("перемирие", "о перемирии", True),
    ("слухи", "по слухам", True),
    # Ukrainian words by lemma too.
    ("Україна", "уряд України", True),
    ("війна", "під час війни", True),
    # =word: this exact form only.
    ("=Лаврова", "слова Лаврова", True),
    ("=Лаврова", "позвонил Лаврову", False),
    ("=ceasefire", "ceasefire", True),
    # Prefixes.
    ("санкц*", "санкционный режим", True),
    ("sanction*", "sanctioned entities", True),
    ("sanction*", "the unsanctioned", False),
    # Phrases: consecutive tokens, each by lemma.
    ('"Сергей Лавров"', "Сергею Лаврову передали", True),
    ('"Сергей Лавров"', "Лавров Сергей", False),
    ('"Сергей Лавров"', "Сергей Викторович Лавров", False),
    ('"peace summit"', "the peace, summit", True),
    ('"peace summit"', "the peace talks summit", False),
    # Boolean operators and precedence.
    ("a AND b", "b a", True),
    ("a AND b", "a only", False),
    ("a b", "a only", False),
    ("a OR b", "only b", True),
    ("a OR b", "neither", False),
    ("a NOT b", "a", True),
    ("a NOT b", "a b", False),
    ("a -b", "a b", False),
    ("NOT b", "anything else", True),
    ("NOT b", "b", False),
    ("a OR b c", "a", True),
    ("a OR b c", "b", False),
    ("a OR b c", "b c", True),
    ("(a OR b) c", "a", False),
    ("NOT a b", "b", True),
    ("NOT a b", "a b", False),
    (
        '(ceasefire OR перемирие OR "cessez-le-feu") AND NOT (rumor OR слухи)',
        "Стороны договорились о перемирии",
        True,
    ),
    (
        '(ceasefire OR перемирие OR "cessez-le-feu") AND NOT (rumor OR слухи)',
        "По слухам, стороны договорились о перемирии",
        False,
    ),
    # Spanish and French.
    ("sanciones", "nuevas SANCIONES contra", True),
    ("negociación", "la negociacion sigue", True),
    ('"alto el fuego"', "un alto el fuego", True),
    ("élections", "les elections", True),
    # Regexes over the raw text.
    ("/\\d{3}-\\d{2}/", "call 555-12 now", True),
    ("/\\d{3}-\\d{2}/", "call 55-12 now", False),
    ("/ЛАВР/i", "лаврушка", True),
    ("/ЛАВР/", "лаврушка", False),
    ("budget /\\d+%/", "budget up 5%", True),
    ("budget /\\d+%/", "budget up 5", False),
]


@pytest.mark.parametrize(("query", "text", "expected"), TEXT_CASES)
def test_text_terms(query: str, text: str, expected: bool) -> None:
    assert matches(query, make_post(text)) is expected


def test_hashtag_gives_word_and_field() -> None:
    text = "Курс #Bitcoin растёт"
    post = make_post(text, entity(text, "hashtag", "#Bitcoin"))
    assert matches("#bitcoin", post)
    assert matches("#BITCOIN", post)
    assert matches("bitcoin", post)
    assert not matches("#bitcoin", make_post("Курс Bitcoin растёт"))
    assert not matches("#bit", post)


def test_cashtag_and_mention() -> None:
    text = "$BTC up, says @MID_Russia"
    post = make_post(text, entity(text, "cashtag", "$BTC"), entity(text, "mention", "@MID_Russia"))
    assert matches("$btc", post)
    assert matches("@mid_russia", post)
    assert not matches("@mid", post)
    # A mention's text is blanked: it is not a word.
    assert not matches("mid_russia", post)
    assert not matches("russia", post)


def test_url_and_email_are_blanked() -> None:
    text = "see example.com/sanctions or write press@mid.ru"
    post = make_post(
        text,
        entity(text, "url", "example.com/sanctions"),
        entity(text, "email", "press@mid.ru"),
    )
    assert not matches("sanctions", post)
    assert not matches("press", post)
    assert matches("see", post)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("domain:example.com", True),
        ("domain:sub.example.com", True),
        ("domain:EXAMPLE.com", True),
        ("domain:badexample.com", False),
        ("domain:example.org", False),
        ("domain:other.sub.example.com", False),
    ],
)
def test_domain(query: str, expected: bool) -> None:
    text = "read more here"
    link = entity(text, "text_link", "here", url="https://sub.example.com/news?id=1")
    assert matches(query, make_post(text, link)) is expected


def test_domain_of_url_entity_without_scheme_and_hidden_link_url_is_not_text() -> None:
    text = "at x.com/mfa_russia and here"
    post = make_post(
        text,
        entity(text, "url", "x.com/mfa_russia"),
        entity(text, "text_link", "here", url="https://t.me/secret_word"),
    )
    assert matches("domain:x.com", post)
    assert matches("domain:t.me", post)
    assert not matches("secret_word", post)
    assert not matches("domain:badexample.com", make_post("badexample.com"))


def test_channel_is_case_insensitive() -> None:
    post = make_post("text", channel="MFA_Russia")
    assert matches("channel:mfa_russia", post)
    assert matches("channel:MFA_RUSSIA", post)
    assert not matches("channel:mfa", post)


def test_lang_and_topic_come_from_enrichment() -> None:
    post = make_post("text")
    enrichment = Enrichment(lang="ru", topics=(TopicScore("sanctions", 0.9),))
    assert matches("lang:ru", post, enrichment)
    assert not matches("lang:en", post, enrichment)
    assert matches("topic:sanctions", post, enrichment)
    assert not matches("topic:war", post, enrichment)
    assert not matches("lang:ru", post, Enrichment())
    assert not matches("lang:ru", post, None)


def test_entity_by_alias_lemma_aware_or_by_enrichment() -> None:
    assert matches("entity:lavrov", make_post("Встреча с Сергеем Лавровым"))
    assert matches("entity:lavrov", make_post("Sergey Lavrov said"))
    assert matches("entity:lavrov", make_post("слова Лаврова"))
    assert not matches("entity:lavrov", make_post("лавровый лист"))
    assert not matches("entity:lavrov", make_post("Sergey said nothing"))
    found = FoundEntity("PER", "министр", 0, 7, id="lavrov")
    assert matches("entity:lavrov", make_post("министр"), Enrichment(entities=(found,)))


def test_highlights_are_spans_of_positive_terms_in_the_original_text() -> None:
    text = "Министр: Лаврову передали ответ. Слухи? Нет."
    index = RuleIndex.from_queries([("s", "Лавров AND NOT санкции OR слухи")])
    [match] = index.match(make_post(text))
    assert [(h.start, h.end, h.text) for h in match.highlights] == [
        (9, 16, "Лаврову"),
        (33, 38, "Слухи"),
    ]
    for highlight in match.highlights:
        assert text[highlight.start : highlight.end] == highlight.text


def test_highlights_of_phrases_regexes_prefixes_and_fields() -> None:
    text = "Курс #Bitcoin: «Сергей Лавров» 555 санкционный"
    post = make_post(text, entity(text, "hashtag", "#Bitcoin"))
    index = RuleIndex.from_queries(
        [("s", '#bitcoin "Сергей Лавров" /\\d{3}/ санкц*'), ("n", "NOT zzz")]
    )
    by_id = {m.subscription_id: m for m in index.match(post)}
    assert [h.text for h in by_id["s"].highlights] == [
        "#Bitcoin",
        "Сергей Лавров",
        "555",
        "санкционный",
    ]
    assert by_id["n"].highlights == ()


def test_overlapping_highlights_merge() -> None:
    index = RuleIndex.from_queries([("s", "entity:lavrov")], [LAVROV])
    [match] = index.match(make_post("Sergey Lavrov spoke"))
    assert [h.text for h in match.highlights] == ["Sergey Lavrov"]


def test_index_evaluates_only_candidates_and_always_rules() -> None:
    index = RuleIndex.from_queries(
        [
            ("word", "alpha"),
            ("pure_not", "NOT alpha"),
            ("pure_regex", "/zz+/"),
            ("word_and_regex", "beta /\\d+/"),
            ("prefix", "gamm*"),
            ("tag", "#delta"),
        ]
    )
    assert [index.rules[n].subscription_id for n in index.always] == ["pure_not", "pure_regex"]
    doc = index.document(make_post("alpha gammas 12"))
    woken = {index.rules[n].subscription_id for n in index.candidates(doc)}
    assert woken == {"word", "pure_not", "pure_regex", "prefix"}
    assert {m.subscription_id for m in index.match_document(doc)} == {"word", "prefix"}


def test_many_rules_match_independently() -> None:
    queries = [(f"r{n}", f"word{n}") for n in range(1000)]
    index = RuleIndex.from_queries(queries)
    matched = [m.subscription_id for m in index.match(make_post("word7 word500 other"))]
    assert matched == ["r7", "r500"]
