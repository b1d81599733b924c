"""Hostile inputs for the fuzz suite and scripts/fuzz_safety.py: query texts, rules files and
API bodies, each mixing plain noise with the syntax its parser reads."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

QUERY_SYNTAX = [
    *'()"«»“”„/\\*-=:#$@., \t\n',
    "AND", "OR", "NOT", " AND ", " OR ", "NOT ", "/i", "domain:", "channel:", "lang:",
    "topic:", "entity:", "лавров", "Санкции", "ceasefire", "ё", "\u0301", "\u200b", "🇷🇺",
    "{500}", ".", "[", "]", "(?", "\\p{L}", "\\b", "+", "?", "|", "^", "$",
]  # fmt: skip

queries = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(QUERY_SYNTAX), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(QUERY_SYNTAX), st.text(max_size=5)), max_size=30).map(
        "".join
    ),
)

YAML_SYNTAX = [
    *"&*!|>-:[]{}#'\"%@`?,\n \t",
    "subscriptions:", "entities:", "\n  - id: ", "\n    query: ", "\n    notify: ",
    "\n    paused: ", "\n    aliases: ", "webhook:", "telegram:", "url:", "secret:", "&a ",
    "*a", "!!python/object:os.system", "!!binary", "<<: ", "---", "...", "null", "~", "1e400",
    "2001-12-40", "0x7f", "\t", "\ufeff", "\x00", "\x85",
]  # fmt: skip

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
_KEYS = st.one_of(
    st.sampled_from(["subscriptions", "entities", "id", "query", "name", "notify", "paused",
                     "aliases", "webhook", "telegram", "url", "secret", "digest", "quiet"]),
    st.text(max_size=10),
)  # fmt: skip
structures = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_KEYS, children, max_size=5)
    ),
    max_leaves=30,
)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True)


rules_texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(YAML_SYNTAX), st.text(max_size=8)), max_size=50).map(
        "".join
    ),
    structures.map(_dump),
    st.builds(
        lambda subs: _dump({"subscriptions": subs}),
        st.lists(st.dictionaries(_KEYS, structures, max_size=6), max_size=4),
    ),
)

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    _JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_KEYS, children, max_size=5)
    ),
    max_leaves=30,
)
_BODY_KEYS = st.sampled_from(["id", "query", "name", "targets", "paused", "mode", "channels",
                              "limit", "channel"])  # fmt: skip
bodies = st.one_of(
    st.dictionaries(_BODY_KEYS, json_values, max_size=6),
    st.builds(
        lambda targets, query: {"query": query, "targets": targets},
        st.lists(json_values, max_size=4),
        queries,
    ),
)
body_bytes = st.one_of(
    st.binary(max_size=300),
    bodies.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b'{"query": NaN}',
            b'{"query": 1e999}',
            b'{"limit": ' + b"9" * 5000 + b"}",
            b'{"query": "\\ud800"}',
            b'{"query": "x"}\xff',
            b"\xef\xbb\xbf{}",
        ]
    ),
)
