"""The query parser: precedence, every term kind, normalization, and positioned errors."""

from __future__ import annotations

import pytest

from service import constants
from service.core.query.parser import (
    And,
    Field,
    Not,
    Or,
    Phrase,
    Prefix,
    QueryError,
    Regex,
    Word,
    parse,
    render,
    terms,
)


def shape(node: object) -> object:
    """A compact form of a tree for table-driven comparisons."""
    if isinstance(node, And):
        return ("AND", *(shape(child) for child in node.children))
    if isinstance(node, Or):
        return ("OR", *(shape(child) for child in node.children))
    if isinstance(node, Not):
        return ("NOT", shape(node.child))
    if isinstance(node, Word):
        return f"={node.norm}" if node.exact else node.norm
    if isinstance(node, Prefix):
        return f"{node.norm}*"
    if isinstance(node, Phrase):
        return ("PHRASE", *node.words)
    if isinstance(node, Regex):
        return f"/{node.pattern}/{'i' if node.ignore_case else ''}"
    assert isinstance(node, Field)
    return f"{node.name}:{node.value}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a", "a"),
        ("a b", ("AND", "a", "b")),
        ("a AND b", ("AND", "a", "b")),
        ("a OR b", ("OR", "a", "b")),
        # AND binds tighter than OR, NOT tighter than AND.
        ("a b OR c", ("OR", ("AND", "a", "b"), "c")),
        ("a OR b c", ("OR", "a", ("AND", "b", "c"))),
        ("NOT a b", ("AND", ("NOT", "a"), "b")),
        ("a OR NOT b c", ("OR", "a", ("AND", ("NOT", "b"), "c"))),
        ("-a b", ("AND", ("NOT", "a"), "b")),
        ("a -(b OR c)", ("AND", "a", ("NOT", ("OR", "b", "c")))),
        ("NOT NOT a", "a"),
        ("(a OR b) c", ("AND", ("OR", "a", "b"), "c")),
        # Lower-case operators are words.
        ("war and peace", ("AND", "war", "and", "peace")),
    ],
)
def test_precedence(query: str, expected: object) -> None:
    assert shape(parse(query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Pétrole", "petrole"),
        ("ЁЛКА", "елка"),
        ("йод", "йод"),
        ("=Лаврова", "=лаврова"),
        ("санкц*", "санкц*"),
        ('"cessez le feu"', ("PHRASE", "cessez", "le", "feu")),
        ("cessez-le-feu", ("PHRASE", "cessez", "le", "feu")),
        ("China's", ("PHRASE", "china", "s")),
        ("«Северный поток»", ("PHRASE", "северный", "поток")),
        ("/\\d{3}/", "/\\d{3}/"),
        ("/a\\/b/i", "/a/b/i"),
        ("#Bitcoin", "tag:bitcoin"),
        ("$BTC", "cashtag:btc"),
        ("@MID_Russia", "mention:mid_russia"),
        ("domain:Example.COM", "domain:example.com"),
        ("channel:@MFA_Russia", "channel:mfa_russia"),
        ("lang:RU", "lang:ru"),
        ("topic:Sanctions", "topic:sanctions"),
        ("entity:lavrov", "entity:lavrov"),
        ("10:30", ("PHRASE", "10", "30")),
    ],
)
def test_terms(query: str, expected: object) -> None:
    assert shape(parse(query)) == expected


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("", "empty query", 0),
        ("   ", "empty query", 0),
        ("(a OR b", 'unbalanced "("', 0),
        ("ceasefire AND (a OR b", 'unbalanced "("', 14),
        ("a OR b)", 'unbalanced ")"', 6),
        (")", 'unbalanced ")"', 0),
        ("a AND", 'expected a term after "AND", found the end', 5),
        ("a OR", 'expected a term after "OR", found the end', 4),
        ("OR a", 'expected a term, found "OR"', 0),
        ("NOT", 'expected a term after "NOT", found the end', 3),
        ("a AND OR b", 'expected a term after "AND", found "OR"', 6),
        ("()", 'empty parentheses: expected a term after "("', 0),
        ('"unfinished', 'unterminated phrase: no closing "', 0),
        ('"..."', "empty phrase: it has no letters or digits", 0),
        ("/abc", "unterminated regex: no closing /", 0),
        ("//", "empty regex", 0),
        ("/abc/x", 'unknown regex flag "x" (only "i")', 5),
        ("/(a/", "regex refused by RE2: missing ): (a", 0),
        ("/(a)\\1/", "regex refused by RE2: invalid escape sequence: \\1", 0),
        ("/(?=a)b/", "regex refused by RE2: invalid perl operator: (?=", 0),
        ("x*y", '"*" may only end a word', 1),
        ("a*", "prefix too short: at least 2 letters before *", 0),
        (
            "chanel:foo",
            'unknown field "chanel:" (known: domain:, channel:, lang:, topic:, entity:)',
            0,
        ),
        ("lang:russian", 'expected a 2-letter language code (en, ru) after "lang:"', 5),
        ("domain:localhost", 'expected a host name like example.com after "domain:"', 7),
        ("#", 'expected letters, digits or "_" after "#"', 1),
        ("— –", 'nothing to match in "—": no letters or digits', 0),
    ],
)
def test_errors(query: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert caught.value.message == message
    assert caught.value.position == position
    assert str(caught.value) == f"{message} at {position}"


def test_length_limit() -> None:
    query = "a " * (constants.QUERY_MAX_LENGTH // 2 + 1)
    with pytest.raises(QueryError, match="query too long"):
        parse(query)


def test_nesting_limit() -> None:
    depth = constants.QUERY_MAX_NESTING
    assert shape(parse("(" * depth + "a" + ")" * depth)) == "a"
    with pytest.raises(QueryError, match="nesting too deep") as caught:
        parse("(" * (depth + 1) + "a" + ")" * (depth + 1))
    assert caught.value.position == depth


def test_terms_limit() -> None:
    limit = constants.QUERY_MAX_TERMS
    assert len(terms(parse(" OR ".join(f"w{n}" for n in range(limit))))) == limit
    with pytest.raises(QueryError, match="too many terms"):
        parse(" OR ".join(f"w{n}" for n in range(limit + 1)))


def test_long_negation_chain_does_not_recurse() -> None:
    assert shape(parse("-" * 1500 + "a")) == "a"
    assert shape(parse("NOT " * 301 + "a")) == ("NOT", "a")


def test_regex_limits() -> None:
    with pytest.raises(QueryError, match="regex too long"):
        parse("/" + "a" * (constants.REGEX_MAX_LENGTH + 1) + "/")
    # An automaton that would need more than the memory limit is refused, not built.
    with pytest.raises(QueryError, match="regex refused by RE2"):
        parse("/((((a{100}){100}){100}){100})/")


def test_terms_and_polarity() -> None:
    tree = parse("a -(b OR NOT c) #d")
    assert [(shape(term), positive) for term, positive in terms(tree)] == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("tag:d", True),
    ]


def test_render_shows_the_tree() -> None:
    lines = render(parse("санкции AND NOT слухи"))
    assert lines[0] == "AND"
    assert lines[1].strip() == "word 'санкции'"
    assert lines[2].strip() == "NOT"
    assert lines[3].strip() == "word 'слухи'"
