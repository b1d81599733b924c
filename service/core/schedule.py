"""When an alert may go out: now, or held for a digest or until quiet hours end.

``plan_delivery(prefs, now)`` is pure: given a subscriber's digest setting (off, 15m, 1h,
daily), quiet window (local times in a time zone) and the current time, it answers "send now"
or "hold until T". Digest windows end on wall-clock boundaries (every quarter hour, every hour,
daily at ``daily_at`` local time) so every alert held in a window is flushed together; a flush
that would fall inside quiet hours moves to their end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service import constants

DIGEST_MODES = ("off", "15m", "1h", "daily")
_STEP = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}


def _parse_time(value: str) -> time:
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"bad time of day {value!r}, expected HH:MM") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


DAILY_AT = _parse_time(constants.DIGEST_DAILY_AT)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local time with no alerts; ``start > end`` spans midnight."""

    start: time
    end: time
    tz: str = "UTC"

    def __post_init__(self) -> None:
        _zone(self.tz)
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time")

    @classmethod
    def parse(cls, window: str, tz: str = "UTC") -> QuietHours:
        """From ``"23:00-07:00"`` and a time zone name."""
        start, sep, end = window.partition("-")
        if not sep:
            raise ValueError(f"bad quiet window {window!r}, expected HH:MM-HH:MM")
        return cls(_parse_time(start), _parse_time(end), tz)

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime) -> datetime:
        """The end of the quiet window ``moment`` lies in (UTC), assuming it lies in one."""
        zone = _zone(self.tz)
        local = moment.astimezone(zone)
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        return _local_to_utc(datetime.combine(day, self.end), zone)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"),
                "tz": self.tz}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuietHours:
        return cls(_parse_time(data["start"]), _parse_time(data["end"]), data.get("tz", "UTC"))


@dataclass(frozen=True, slots=True)
class DeliveryPrefs:
    """A subscriber's delivery preferences (the bot's /digest and /quiet)."""

    digest: str = "off"
    quiet: QuietHours | None = None
    tz: str = "UTC"
    daily_at: time = DAILY_AT

    def __post_init__(self) -> None:
        if self.digest not in DIGEST_MODES:
            raise ValueError(f"digest must be one of {', '.join(DIGEST_MODES)}")
        _zone(self.tz)

    @property
    def holds(self) -> bool:
        return self.digest != "off" or self.quiet is not None

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "tz": self.tz, "daily_at": self.daily_at.strftime("%H:%M"),
                "quiet": None if self.quiet is None else self.quiet.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryPrefs:
        quiet = data.get("quiet")
        tz = data.get("tz") or (quiet or {}).get("tz") or "UTC"
        return cls(
            digest=str(data.get("digest") or "off"),
            quiet=None if not quiet else QuietHours.from_dict({"tz": tz, **quiet}),
            tz=tz,
            daily_at=_parse_time(data.get("daily_at") or constants.DIGEST_DAILY_AT),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """``hold_until`` None: send now; else hold the alert and flush it at that moment (UTC)."""

    hold_until: datetime | None = None
    reason: str = "now"

    @property
    def send_now(self) -> bool:
        return self.hold_until is None


def _local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time to UTC; a time skipped by a DST jump maps to just after the jump."""
    aware = naive.replace(tzinfo=zone)
    roundtrip = aware.astimezone(UTC).astimezone(zone)
    if roundtrip.replace(tzinfo=None) != naive:  # nonexistent local time (spring forward)
        aware = naive.replace(tzinfo=zone, fold=1)
    return aware.astimezone(UTC)


def digest_boundary(prefs: DeliveryPrefs, now: datetime) -> datetime:
    """The end of the digest window ``now`` lies in (UTC, strictly after ``now``)."""
    zone = _zone(prefs.tz)
    if prefs.digest in _STEP:
        step = _STEP[prefs.digest]
        local = now.astimezone(zone)
        midnight = _local_to_utc(datetime.combine(local.date(), time()), zone)
        elapsed = now - midnight
        periods = elapsed // step + 1
        return midnight + step * periods
    local = now.astimezone(zone)
    candidate = _local_to_utc(datetime.combine(local.date(), prefs.daily_at), zone)
    if candidate <= now:
        candidate = _local_to_utc(
            datetime.combine(local.date() + timedelta(days=1), prefs.daily_at), zone
        )
    return candidate


def plan_delivery(prefs: DeliveryPrefs, now: datetime) -> Plan:
    """Send now, or hold until the digest window or the quiet hours end."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    moment, reason = now, "now"
    if prefs.digest != "off":
        moment, reason = digest_boundary(prefs, now), "digest"
    quiet = prefs.quiet
    if quiet is not None and quiet.contains(moment.astimezone(_zone(quiet.tz)).time()):
        moment, reason = quiet.end_after(moment), "quiet"
    return Plan(None) if moment == now else Plan(moment, reason)
