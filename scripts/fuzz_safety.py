"""Fuzz the parsers of hostile input for a long run: 10,000+ cases per target by default.

Usage: ``python scripts/fuzz_safety.py [--cases 10000] [--only query,rules,...] [--seed 1]``

The same properties as ``tests/security/test_fuzz.py`` (which runs a few hundred cases each on
every ``make test``), with the same hypothesis strategies (``tests/security/strategies.py``):
whatever the input, each target raises only its own error. A target that lets anything else
out prints the falsifying input, and the script exits 1. The figures of the last run are in
docs/security.md.

Targets: ``query`` (the query parser), ``rules`` (the rules-file loader), ``body`` (the API's
body decoding), ``fields`` (the API's request fields), ``targets`` (target checks), ``urls``
(webhook URL checks).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from service.api.decode import (  # noqa: E402
    ApiError,
    decode_json_body,
    query_test_fields,
    subscription_fields,
)
from service.core.query.parser import QueryError, parse  # noqa: E402
from service.core.rules import RulesError, parse_rules  # noqa: E402
from service.core.targets import TargetError, check_webhook_url  # noqa: E402
from service.store.subscription import validate_targets  # noqa: E402
from tests.security.strategies import (  # noqa: E402
    bodies,
    body_bytes,
    json_values,
    queries,
    rules_texts,
)


def _query(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse(text)


def _rules(text: str) -> None:
    with contextlib.suppress(RulesError):
        parse_rules(text, "fuzz.yaml")


def _body(raw: bytes) -> None:
    with contextlib.suppress(ApiError):
        decode_json_body(raw)


def _fields(data: dict[str, Any]) -> None:
    for create in (True, False):
        with contextlib.suppress(ApiError):
            subscription_fields(data, create=create)
    with contextlib.suppress(ApiError):
        query_test_fields(data)


def _targets(targets: list[Any]) -> None:
    with contextlib.suppress(ValueError):
        validate_targets(targets)


def _urls(url: str) -> None:
    with contextlib.suppress(TargetError):
        check_webhook_url(url)


TARGETS: dict[str, tuple[Callable[[Any], None], Any]] = {
    "query": (_query, queries),
    "rules": (_rules, rules_texts),
    "body": (_body, body_bytes),
    "fields": (_fields, bodies),
    "targets": (_targets, st.lists(json_values, max_size=4)),
    "urls": (_urls, st.one_of(st.text(max_size=100), st.builds("http://{}/".format, st.text()))),
}


def run(name: str, cases: int, rng_seed: int) -> tuple[int, float, str | None]:
    """Run one target; returns (cases run, seconds, the failure or None)."""
    check, strategy = TARGETS[name]
    count = 0

    @seed(rng_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    started = time.perf_counter()
    try:
        prop()
    except Exception:  # a falsifying example: report it whole
        return count, time.perf_counter() - started, traceback.format_exc(limit=3)
    return count, time.perf_counter() - started, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per target")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    failed = False
    print(f"{'target':<8} {'cases':>7} {'seconds':>8} {'cases/s':>8}  result")
    for name in args.only.split(","):
        count, seconds, failure = run(name.strip(), args.cases, args.seed)
        rate = count / seconds if seconds else 0.0
        result = "only its own errors" if failure is None else "FAILED"
        print(f"{name:<8} {count:>7} {seconds:>8.1f} {rate:>8.0f}  {result}", flush=True)
        if failure is not None:
            failed = True
            print(failure, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
