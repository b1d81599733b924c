"""Property tests: the parser fails only with QueryError, whatever it is given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.query.index import RuleIndex
from service.core.query.parser import QueryError, parse

PIECES = [
    "AND", "OR", "NOT", "-", "(", ")", '"', "«", "»", "/", "/i", "\\", "*", "=", "#", "$", "@",
    ":", "domain:", "channel:", "lang:", "topic:", "entity:", "chanel:", "a", "b", "санкции",
    "Лавров", "pétrole", "x*", "ab*", "/[a-", "/a{1000}{1000}/", "(?=", "\\1", " ", "  ", "ё",
    "10:30", "example.com", "'", "«»", "—",
]  # fmt: skip


def parses_or_fails_cleanly(query: str) -> None:
    try:
        tree = parse(query)
    except QueryError as exc:
        assert 0 <= exc.position <= len(query)
        assert str(exc).endswith(f" at {exc.position}")
        return
    # Whatever parses also compiles (entity references aside, checked by the rules file).
    if "entity:" not in query:
        RuleIndex.from_queries([("s", query)])
    assert tree is not None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(query: str) -> None:
    parses_or_fails_cleanly(query)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_token_soup(pieces: list[str]) -> None:
    parses_or_fails_cleanly("".join(pieces))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_token_soup_with_spaces(pieces: list[str]) -> None:
    parses_or_fails_cleanly(" ".join(pieces))
