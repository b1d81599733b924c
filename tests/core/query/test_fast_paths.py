"""The engine's fast paths give what the plain ones give: flat conditions and the node tree,
highlights of key-only rules and the tree walk, chunk scans and the key map, the plain-word
parser and the full one, the common URL shape and urlsplit; lazy highlights."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.model import Highlight
from service.core.post import Entity, Post
from service.core.query import parser as q
from service.core.query.chunks import ChunkKeys
from service.core.query.document import build_document, host_of
from service.core.query.index import RuleIndex
from service.core.query.match import AllOf, AnyOf, Match, NotOf, RuleNode
from service.core.query.plan import conditions, highlight_node
from service.core.text import normalize_host

WORDS = ["санкции", "Лаврову", "лавров", "ceasefire", "peace", "summit", "газ", "нефть", "fire"]
TEXTS = [
    "Лаврову передали: санкции, санкций и (новые) санкции! ceasefire—peace summit.",
    "peace, peace; summit? газ нефть газа нефти #delta ﬁre fire sanctioned",
    "Сергей Лавров, Сергею Лаврову; лавровый лист. ceasefire ceasefire ceasefire",
    "санкционный режим: sanctioned, unsanctioned; peace-summit peace summit",
]
QUERIES = [
    "санкции",
    "Лавров санкции",
    "санкции OR газ",
    "peace AND NOT (summit OR газ)",
    "(санкции OR газ OR нефть) peace",
    '"peace summit"',
    '"Сергей Лавров" OR ceasefire',
    "санкц* peace",
    "sanction* OR fire",
    "NOT газ",
    "санкции (санкции OR summit)",
    "(peace summit) OR (газ нефть)",
    "#delta OR нефть",
    "ceasefire /cease\\w+/",
    "-summit peace OR нефть",
    "=Лаврову OR =санкций",
]


def make_post(text: str) -> Post:
    entities: list[Entity] = []
    if "#delta" in text:
        entities.append(Entity("hashtag", text.index("#delta"), 6, "#delta"))
    return Post(
        channel="chan",
        message_id=1,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        entities=tuple(entities),
    )


def reference_highlights(node: RuleNode, doc: object) -> list[tuple[int, int]]:
    """The tree walk, with spans merged as the engine merges them."""
    spans: list[tuple[int, int]] = []

    def collect(item: RuleNode) -> None:
        if isinstance(item, AllOf):
            for child in item.children:
                collect(child)
        elif isinstance(item, AnyOf):
            for child in item.children:
                if child.test(doc):  # type: ignore[arg-type]
                    collect(child)
        elif not isinstance(item, NotOf):
            spans.extend(item.spans(doc))  # type: ignore[arg-type]

    collect(node)
    merged: list[list[int]] = []
    for start, end in sorted(set(spans)):
        if end <= start:
            continue
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def random_queries(count: int) -> list[str]:
    rng = random.Random(3)
    shapes = [
        "{a}",
        "{a} {b}",
        "{a} OR {b}",
        "{a} AND NOT ({b} OR {c})",
        "({a} OR {b} OR {c}) {d}",
        '"{a} {b}"',
        "({a} {b}) OR {c}",
        "{a} ({a} OR {b})",
        "NOT {a}",
    ]
    return [
        rng.choice(shapes).format(**{n: rng.choice(WORDS) for n in "abcd"}) for _ in range(count)
    ]


@pytest.mark.parametrize("text", TEXTS)
def test_the_index_agrees_with_the_rule_tree(text: str) -> None:
    queries = QUERIES + random_queries(150)
    index = RuleIndex.from_queries([(f"r{n}", query) for n, query in enumerate(queries)])
    doc = index.document(make_post(text))
    expected = [n for n, rule in enumerate(index.rules) if rule.node.test(doc)]
    assert index.matching(doc) == expected
    for number in expected:
        node = index.rules[number].node
        assert conditions(node).holds(doc)
    # Highlights: past the first few keys a document switches to its key map; both agree.
    fresh = index.document(make_post(text))
    matches = index.match_document(fresh)
    assert [m.subscription_id for m in matches] == [f"r{n}" for n in expected]
    for match, number in zip(matches, expected, strict=True):
        node = index.rules[number].node
        assert [(h.start, h.end) for h in match.highlights] == reference_highlights(node, doc)
        assert all(h.text == text[h.start : h.end] for h in match.highlights)


def test_highlight_nodes_stand_for_key_only_rules() -> None:
    index = RuleIndex.from_queries([("a", "санкции OR газ"), ("b", '"peace summit" OR газ')])
    assert type(highlight_node(index.rules[0].node)).__name__ == "AnyKeys"
    assert highlight_node(index.rules[1].node) is index.rules[1].node


def test_documents_without_an_index_cache_their_own_chunks() -> None:
    text = TEXTS[0]
    doc = build_document(make_post(text))
    assert {"санкция", "=санкции", "лавров", "ceasefire", "peace"} <= doc.keys
    forms = [(text.index(form), text.index(form) + len(form)) for form in ("санкции,", "санкций")]
    last = text.rindex("санкции")
    assert doc.spans_of("санкция") == [(forms[0][0], forms[0][1] - 1), forms[1], (last, last + 7)]
    assert [t[:2] for t in doc.tokens][:2] == [(0, 7), (8, 16)]
    assert len(doc.sequence) == len(doc.tokens)


def test_chunks_of_several_tokens_keep_their_offsets() -> None:
    keys = ChunkKeys(["peac"])
    chunk = "(peace—summit),"
    assert keys.keys([chunk]) == {"peace", "summit", "*peac"}
    assert [(start, end, norm) for start, end, norm, _ in keys.entries(chunk)] == [
        (1, 6, "peace"),
        (7, 13, "summit"),
    ]
    assert keys.spans(f"x {chunk} {chunk}", [chunk], "*peac") == [(3, 8), (19, 24)]


def test_a_recompiled_index_keeps_its_chunk_cache_when_prefixes_do_not_change() -> None:
    first = RuleIndex.from_queries([("a", "sanction* peace")])
    second = RuleIndex.from_queries([("a", "sanction* peace"), ("b", "summit")])
    third = RuleIndex.from_queries([("a", "санкц*")])
    assert first._chunk_keys is second._chunk_keys
    assert third._chunk_keys is not second._chunk_keys


def test_highlights_are_computed_once_on_first_access() -> None:
    index = RuleIndex.from_queries([("s", "санкции")])
    (match,) = index.match(make_post("новые санкции"))
    first = match.highlights
    assert first == (Highlight(6, 13, "санкции"),)
    assert match.highlights is first
    assert match == Match("s", first)
    assert hash(match) == hash(Match("s", first))
    assert repr(match) == f"Match(subscription_id='s', highlights={first!r})"
    assert Match("s") != Match("t") and Match("s").highlights == ()


PLAIN = st.lists(
    st.sampled_from(["санкции", "Peace", "AND", "OR", "NOT", "ﬁre", "x2", "é", "ǅ", "⑴", "ß"]),
    min_size=1,
    max_size=5,
).map("  ".join)


@given(PLAIN)
def test_plain_queries_parse_as_the_parser_parses_them(query: str) -> None:
    plain = q._plain(query)
    try:
        full = q._Parser(q._Lexer(query).tokens()).parse()
    except q.QueryError:
        assert plain is None
        return
    assert plain is None or plain == full


@pytest.mark.parametrize(
    "url",
    [
        "https://News.Example.com/a/1",
        "example.com",
        "http://example.com:8080?x=1",
        "http://example.com.#top",
        "http://user@example.com/",
        "http://[::1]/x",
        "HTTPS://xn--d1abbgf6aiiy.xn--p1ai/",
        "http://пример.рф/путь",
        "http://a..b/",
        "http://example.com:abc/",
    ],
)
def test_the_common_url_shape_gives_the_host_urlsplit_gives(url: str) -> None:
    candidate = url if "://" in url else f"http://{url}"
    host = urlsplit(candidate).hostname
    assert host_of(url) == (normalize_host(host) if host else None)
