"""Property-based fuzzing of every input parser: only FormatError comes out, everything else is
set aside, and every post that comes out is storable and in range.

A short run in the suite; `scripts/fuzz_parsers.py` runs the same properties on 10,000+ cases
per target (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings

from service.core.formats.botapi import parse_updates
from service.core.formats.detect import parse_bytes
from service.core.formats.export import parse_export
from service.core.formats.preview import parse_preview
from service.core.formats.result import FormatError, ParseResult
from tests.core.formats import strategies

# No example database: the cases are cheap to regenerate and leave nothing in the checkout.
FUZZ: dict[str, Any] = {
    "max_examples": 150,
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def fuzz_bot_api(data: object) -> None:
    with contextlib.suppress(FormatError):
        strategies.check_result(parse_updates(data, source_name="fuzz"))


def fuzz_export(data: object) -> None:
    with contextlib.suppress(FormatError):
        strategies.check_result(parse_export(data, source_name="fuzz"))  # type: ignore[arg-type]


def fuzz_preview(html: str) -> None:
    with contextlib.suppress(FormatError):
        page = parse_preview(html, source_name="fuzz")
        strategies.check_result(ParseResult(posts=page.posts, rejected=page.rejected))


def fuzz_files(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        strategies.check_result(parse_bytes(data, source_name="fuzz"))


@settings(**FUZZ)
@given(data=strategies.bot_api_updates())
def test_bot_api_parser_only_raises_its_own_error(data: object) -> None:
    fuzz_bot_api(data)


@settings(**FUZZ)
@given(data=strategies.exports())
def test_export_parser_only_raises_its_own_error(data: object) -> None:
    fuzz_export(data)


@settings(**FUZZ)
@given(html=strategies.preview_pages())
def test_preview_parser_only_raises_its_own_error(html: str) -> None:
    fuzz_preview(html)


@settings(**FUZZ)
@given(data=strategies.files())
def test_detection_and_files_only_raise_their_own_error(data: bytes) -> None:
    fuzz_files(data)
