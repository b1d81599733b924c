"""Property-based fuzzing (hypothesis): whatever the input, the query parser, the rules loader,
the API's body decoding and the target checks raise only their own errors — never a
TypeError, RecursionError or anything else a caller would not catch. scripts/fuzz_safety.py
runs the same properties for 10,000+ cases each (figures in docs/security.md)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.decode import ApiError, decode_json_body, query_test_fields, subscription_fields
from service.core.query.parser import QueryError, parse
from service.core.rules import RulesError, parse_rules
from service.core.targets import TargetError, check_webhook_url
from service.store.subscription import validate_targets
from tests.security.strategies import bodies, body_bytes, json_values, queries, rules_texts

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(queries)
def test_query_parser_raises_only_query_errors(text: str) -> None:
    try:
        parse(text)
    except QueryError as exc:
        assert 0 <= exc.position <= len(text) + 1


@FAST
@given(rules_texts)
def test_rules_loader_raises_only_rules_errors(text: str) -> None:
    try:
        parse_rules(text, "fuzz.yaml")
    except RulesError as exc:
        assert exc.problems
        assert all(p.line is None or p.line >= 1 for p in exc.problems)


@FAST
@given(body_bytes)
def test_body_decoding_raises_only_api_errors(raw: bytes) -> None:
    try:
        data = decode_json_body(raw)
    except ApiError as exc:
        assert exc.status in (400, 422)
        return
    assert isinstance(data, dict)
    json.dumps(data).encode("utf-8")  # whatever got through is storable as is


@FAST
@given(bodies, st.booleans())
def test_request_fields_raise_only_api_errors(data: dict[str, Any], create: bool) -> None:
    for read in (lambda: subscription_fields(data, create=create), lambda: query_test_fields(data)):
        try:
            read()
        except ApiError as exc:
            assert exc.status == 422


@FAST
@given(st.lists(json_values, max_size=4))
def test_target_checks_raise_only_value_errors(targets: list[Any]) -> None:
    try:
        validate_targets(targets)
    except ValueError as exc:
        assert str(exc).startswith("target ")


@FAST
@given(st.one_of(st.text(max_size=100), st.builds("http://{}/".format, st.text(max_size=40))))
def test_url_check_raises_only_target_errors(url: str) -> None:
    with contextlib.suppress(TargetError):
        check_webhook_url(url)
