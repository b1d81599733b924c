"""Retry timing, written once: schedules with jitter, capped exponential backoff, Retry-After.

Deliveries (Telegram, webhooks, digests), the preview poller, the bot listener and Redis
reconnects all wait through these functions, so every wait is finite, non-negative and bounded
(a ``Retry-After: inf`` header or a typo'd schedule cannot park anything forever).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from service import constants


def bounded_delay(seconds: float, cap: float = constants.RETRY_DELAY_MAX_SECONDS) -> float:
    """A wait made safe to schedule: finite, >= 0 and at most ``cap``."""
    if math.isnan(seconds) or seconds < 0:
        return 0.0
    return min(seconds, cap)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), bounded by
    RETRY_DELAY_MAX_SECONDS; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return bounded_delay(float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return bounded_delay(when.timestamp() - now)


def backoff(failures: int, base: float, cap: float, *, jitter: float = 0.0,
            rng: random.Random | None = None) -> float:  # fmt: skip
    """Capped exponential backoff after ``failures`` failures in a row (1 gives ``base``),
    spread by up to ``jitter`` (a fraction, applied after the cap)."""
    exponent = min(max(failures, 1) - 1, 60)
    delay = min(cap, base * (2.0**exponent))
    if jitter:
        delay *= 1.0 + (rng or random).uniform(0.0, jitter)
    return bounded_delay(delay)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays between the attempts of one delivery: ``schedule[n]`` after attempt ``n`` failed,
    spread by up to ``jitter`` (a fraction) so retries of many alerts do not arrive together."""

    schedule: tuple[float, ...]
    jitter: float = 0.0

    def delay(self, attempt: int, *, at_least: float = 0.0,
              rng: random.Random | None = None) -> float | None:  # fmt: skip
        """The wait before the attempt after ``attempt`` (never less than ``at_least``, e.g. a
        Retry-After), or None when the schedule is used up."""
        if not 0 <= attempt < len(self.schedule):
            return None
        spread = (rng or random).uniform(0.0, self.jitter) if self.jitter else 0.0
        return bounded_delay(max(self.schedule[attempt] * (1.0 + spread), at_least))
