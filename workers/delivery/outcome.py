"""What became of one delivery attempt: the senders say it, the job layer acts on it."""

from __future__ import annotations

from dataclasses import dataclass

SENT = "sent"  # delivered now
ALREADY_SENT = "already_sent"  # an earlier delivery of this alert to this target succeeded
IN_FLIGHT = "in_flight"  # another copy is sending it right now: check again later
DEFERRED = "deferred"  # not a failure (rate limits): try again after ``retry_in``
RETRY = "retry"  # failed for now: retry per the schedule (not before ``retry_in``)
DEAD = "dead"  # failed for good (refused address, bad request): dead-letter it
DISABLED = "disabled"  # the target is deactivated (blocked, kicked, gone): stop
HELD = "held"  # held for a digest or until quiet hours end


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    detail: str = ""
    retry_in: float = 0.0
    message_id: int | None = None

    @property
    def done(self) -> bool:
        """Nothing more to do for this delivery."""
        return self.status in (SENT, ALREADY_SENT, DISABLED, HELD)
