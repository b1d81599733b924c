"""Fuzz every input parser at length, then time preview text assembly against page size.

Usage: ``python scripts/fuzz_parsers.py [--cases 10000] [--seed 12] [--targets botapi,export,
preview,files]``

Each target runs ``--cases`` generated inputs (the strategies of
``tests/core/formats/strategies.py``: real field names and markup with hostile values, raw and
mutated bytes) through its parser and checks the suite's property: nothing but FormatError comes
out, every post is storable as UTF-8 JSON and in range, every rejection is printable. The first
failure stops its target and is printed. Then preview pages of growing size, made of the markup
that once made text assembly quadratic (links, formatting, emoji), are timed: the time per KiB
must stay flat. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.core.formats.preview import parse_preview
from tests.core.formats import strategies
from tests.core.formats.test_fuzz import (
    fuzz_bot_api,
    fuzz_export,
    fuzz_files,
    fuzz_preview,
)

TARGETS: dict[str, tuple[Callable[[Any], None], Any]] = {
    "botapi": (fuzz_bot_api, strategies.bot_api_updates()),
    "export": (fuzz_export, strategies.exports()),
    "preview": (fuzz_preview, strategies.preview_pages()),
    "files": (fuzz_files, strategies.files()),
}


def fuzz(name: str, cases: int, rng_seed: int) -> tuple[int, float, str]:
    """Run one target; (cases run, seconds, first failure or "")."""
    target, strategy = TARGETS[name]
    count = 0

    @seed(rng_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def case(value: Any) -> None:
        nonlocal count
        count += 1
        target(value)

    started = time.perf_counter()
    failure = ""
    try:
        case()
    except Exception as exc:  # report the failure and go on with the other targets
        failure = f"{type(exc).__name__}: {str(exc)[:300]}"
    return count, time.perf_counter() - started, failure


def _page(kib: int) -> str:
    unit = (
        '<a href="https://example.org/a?b=1">link</a> <b>bold <i>both</i></b> '
        '<i class="emoji"><b>🇷🇺</b></i> <a href="?q=%23tag">#tag</a><br/>'
    )
    body = unit * (kib * 1024 // len(unit.encode()))
    return (
        '<section class="tgme_channel_history"><div class="tgme_widget_message" data-post="c/1">'
        f'<div class="tgme_widget_message_text js-message_text">{body}</div>'
        '<a class="tgme_widget_message_date" href="https://t.me/c/1">'
        '<time datetime="2024-09-26T04:30:00+00:00"></time></a></div></section>'
    )


def assembly(sizes: list[int]) -> None:
    print("\npreview text assembly (one message block of links, formatting and emoji):")
    print(f"{'page KiB':>9} {'entities':>9} {'seconds':>8} {'ms per KiB':>11}")
    for kib in sizes:
        html = _page(kib)
        started = time.perf_counter()
        (post,) = parse_preview(html).posts
        elapsed = time.perf_counter() - started
        size = len(html.encode()) / 1024
        print(
            f"{size:>9.0f} {len(post.entities):>9} {elapsed:>8.2f} {elapsed * 1000 / size:>11.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--sizes", default="88,176,352,704")
    args = parser.parse_args()
    print(f"fuzzing {args.cases} cases per target (seed {args.seed})")
    print(f"{'target':<8} {'cases':>7} {'seconds':>8} {'cases/s':>8}  result")
    failed = False
    for name in args.targets.split(","):
        count, elapsed, failure = fuzz(name, args.cases, args.seed)
        failed |= bool(failure)
        result = failure or "only FormatError raised; every post and rejection storable"
        print(f"{name:<8} {count:>7} {elapsed:>8.1f} {count / elapsed:>8.0f}  {result}")
    assembly([int(size) for size in args.sizes.split(",")])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
