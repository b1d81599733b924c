"""What a query's regexes cost, measured once when the query is checked: a regex that would slow
every post on the shared workers is refused before it is saved.

RE2 runs in linear time, but the constant can be huge: ``/.{500}x/`` exhausts RE2's DFA budget
and falls back to a simulation that costs ~70 ms on one long post, where an ordinary regex costs
~15 us. So the cost of each regex is measured on a sample shaped like the longest Telegram
post (4,096 characters of Cyrillic and Latin prose, digits, hashtags, links and emoji), scanning
it to the end as testing a post without a hit does, and compared with a limit in milliseconds.
The measure is the fastest of a few runs (a busy machine only ever slows a run down) and is
cached per pattern. The limit comes from the caller (``TGWATCH_LIMIT_REGEX_MS``).
"""

from __future__ import annotations

import time
from functools import lru_cache

from service import constants
from service.core.query.parser import Node, QueryError, Regex, compile_regex, terms

# Posts of three kinds, each the length of the longest post. A regex costs most on a post it
# does not match (it scans to the end, as the workers' first-match test does), so each kind
# keeps to its own characters: a regex built around Latin letters is scanned to the end on the
# Cyrillic post, one around Cyrillic letters on the Latin post, one around letters at all on
# the third.
_KINDS = (
    "Министр иностранных дел Сергей Лавров провёл переговоры с коллегами о прекращении огня, "
    "санкциях и поставках зерна; стороны договорились продолжить консультации в Женеве. "
    "Міністр закордонних справ заявив, що делегації обговорили гуманітарні коридори.\n",
    "The foreign ministers met on Tuesday to discuss a ceasefire, sanctions and grain exports; "
    "talks will resume next week in Geneva, a spokesperson said, quoting the joint statement.\n",
    "12.5% — 2024-05-01 10:00:02 +03:00 · №17 / 24/7 … «» “” (1) [2] {3} <4> 🇷🇺🤝📰🔥 "
    "会谈 協議 ٢٠٢٤ ＄１２ ###, ;;; ::: !!! ??? *** ~~~ ^^^ &&& ||| ___ === +++ --- ...\n",
)
SAMPLE_CHARS = constants.TELEGRAM_MESSAGE_LIMIT


def _post(paragraph: str) -> bytes:
    repeated = paragraph * (SAMPLE_CHARS // len(paragraph) + 1)
    return repeated[:SAMPLE_CHARS].encode("utf-8")


SAMPLES = tuple(_post(paragraph) for paragraph in _KINDS)
# Runs per regex: the fastest is kept. A run under CHEAP_MS needs no second look, one over
# OBVIOUS_MS is over any sane limit: neither is run again.
RUNS = 3
CHEAP_MS = 0.1
OBVIOUS_MS = 50.0


def _scan_ms(regex: object) -> float:
    """The slowest first-match search over the sample posts, in milliseconds."""
    worst = 0.0
    for sample in SAMPLES:
        started = time.perf_counter()
        regex.search(sample)  # type: ignore[attr-defined]
        worst = max(worst, (time.perf_counter() - started) * 1000)
    return worst


@lru_cache(maxsize=1024)
def regex_cost_ms(pattern: str, ignore_case: bool) -> float:
    """Milliseconds this regex costs on a 4,096-character post it does not match early (re2.error
    when RE2 refuses to compile it)."""
    regex = compile_regex(pattern, ignore_case)
    best = float("inf")
    for _ in range(RUNS):
        best = min(best, _scan_ms(regex))
        if best < CHEAP_MS or best > OBVIOUS_MS:
            break
    return best


def regex_terms(tree: Node) -> list[Regex]:
    """The regexes of a query."""
    return [term for term, _positive in terms(tree) if isinstance(term, Regex)]


def check_regex_cost(tree: Node, limit_ms: float) -> None:
    """QueryError at the first regex of ``tree`` that costs more than ``limit_ms`` per post."""
    for regex in regex_terms(tree):
        cost = regex_cost_ms(regex.pattern, regex.ignore_case)
        if cost > limit_ms:
            raise QueryError(
                f"regex too costly: {cost:.1f} ms on a {SAMPLE_CHARS}-character post, "
                f"at most {limit_ms:g} ms",
                regex.position,
            )
