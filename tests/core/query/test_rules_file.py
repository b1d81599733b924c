"""The rules file: the documented format loads; every error is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core.query.index import RuleIndex
from service.core.rules import (
    RulesError,
    RuleSet,
    Subscription,
    check_queries,
    load_rules,
    parse_rules,
)

GOOD = """\
entities:            # watched entities, referenced as entity:<id>
  - id: lavrov
    name: Sergey Lavrov
    aliases: ["Sergey Lavrov", "Lavrov", "Лавров", "Сергей Лавров"]
subscriptions:
  - id: ceasefire
    name: Ceasefire, not rumours
    query: '(ceasefire OR перемирие OR "cessez-le-feu") AND NOT (rumor OR слухи)'
  - id: lavrov
    query: entity:lavrov
    paused: true
    notify:
      - telegram: 12345
"""


ALLOWED_SUBSCRIPTION_KEYS = "(allowed: id, name, query, notify, paused)"


def problems(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    return [(problem.line, problem.message) for problem in caught.value.problems]


def test_the_documented_example_loads() -> None:
    ruleset = parse_rules(GOOD)
    assert [e.id for e in ruleset.entities] == ["lavrov"]
    assert ruleset.entities[0].aliases[2] == "Лавров"
    ceasefire, lavrov = ruleset.subscriptions
    assert ceasefire == Subscription(
        "ceasefire",
        '(ceasefire OR перемирие OR "cessez-le-feu") AND NOT (rumor OR слухи)',
        "Ceasefire, not rumours",
    )
    assert lavrov.paused is True
    assert lavrov.notify == ({"telegram": 12345},)
    assert lavrov.name == "lavrov"


def test_version_follows_content() -> None:
    first = parse_rules(GOOD)
    assert first.version == parse_rules(GOOD).version
    assert first.version != parse_rules(GOOD.replace("слухи", "fake")).version


def test_paused_subscriptions_are_not_compiled() -> None:
    index = RuleIndex.build(parse_rules(GOOD))
    assert [rule.subscription_id for rule in index.rules] == ["ceasefire"]
    assert index.version == parse_rules(GOOD).version


def test_empty_file_is_an_empty_rule_set() -> None:
    assert parse_rules("") == RuleSet()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "subscriptions:\n  - id: a\n    query: x\n    notfy: []\n",
            [(4, 'unknown key "notfy" in a subscription ' + ALLOWED_SUBSCRIPTION_KEYS)],
        ),
        (
            "entities: []\nrules: []\n",
            [(2, 'unknown key "rules" in the rules file (allowed: entities, subscriptions)')],
        ),
        (
            "entities:\n  - id: e\n    aliases: [x]\n    alias: y\n",
            [(4, 'unknown key "alias" in an entity (allowed: id, name, aliases)')],
        ),
        (
            "subscriptions:\n  - id: a\n    query: x\n  - id: a\n    query: y\n",
            [(4, 'duplicate subscription id "a" (first at line 2)')],
        ),
        (
            "entities:\n  - id: e\n    aliases: [x]\n  - id: e\n    aliases: [y]\n",
            [(4, 'duplicate entity id "e" (first at line 2)')],
        ),
        (
            "subscriptions:\n  - id: a\n    query: 'ceasefire AND (a OR b'\n",
            [(3, 'subscription "a": query error: unbalanced "(" at 14')],
        ),
        (
            "subscriptions:\n  - id: a\n    query: entity:nobody\n",
            [(3, 'subscription "a": entity:nobody at 0 is not defined under entities:')],
        ),
        (
            "subscriptions:\n  - id: a\n",
            [(2, 'subscription "a" has no "query"')],
        ),
        (
            "subscriptions:\n  - id: a\n    query: x\n    paused: maybe\n",
            [(4, '"paused" of subscription "a" must be true or false')],
        ),
        (
            "subscriptions:\n  - id: a\n    query: x\n    notify: telegram\n",
            [(4, '"notify" of subscription "a" must be a list')],
        ),
        (
            "entities:\n  - id: e\n    aliases: []\n",
            [(3, '"aliases" of entity "e" must be a non-empty list')],
        ),
        (
            "subscriptions:\n  - id: 'bad id'\n    query: x\n",
            [(2, 'id "bad id" may hold only letters, digits, "_", "-", "."')],
        ),
        ("subscriptions: {}\n", [(1, "subscriptions must be a list")]),
        ("- a\n- b\n", [(1, "the rules file must be a mapping of entities, subscriptions")]),
    ],
)
def test_errors_name_their_line(text: str, expected: list[tuple[int, str]]) -> None:
    assert problems(text) == expected


def test_a_yaml_syntax_error_names_its_line() -> None:
    # libyaml's parser (used when PyYAML has it) words it its own way; the line is what counts.
    [(line, message)] = problems("subscriptions:\n  - id: a\n   query: x\n")
    assert line == 3
    assert message.startswith("not valid YAML: ")


def test_every_problem_is_reported() -> None:
    text = "subscriptions:\n  - id: a\n    query: '('\n  - id: b\n    query: ok\n    x: 1\n"
    assert [line for line, _ in problems(text)] == [3, 6]


def test_load_rules_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("subscriptions:\n  - id: a\n    query: 'a OR'\n", encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"{path}: line 3: ")


def test_check_queries_for_rule_sets_from_plain_data() -> None:
    ruleset = RuleSet(subscriptions=(Subscription("a", "x OR"), Subscription("a", "entity:e")))
    messages = [problem.message for problem in check_queries(ruleset)]
    assert messages == [
        'subscription "a": query error: expected a term after "OR", found the end at 4',
        'duplicate subscription id "a"',
        'subscription "a": entity:e at 0 is not defined under entities:',
    ]
