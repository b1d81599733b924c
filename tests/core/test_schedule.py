"""Digest and quiet-hours planning: send now, or hold until the window ends."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from service.core.schedule import DeliveryPrefs, QuietHours, plan_delivery


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


QUIET_MSK = QuietHours.parse("23:00-07:00", "Europe/Moscow")  # UTC+3


@pytest.mark.parametrize(
    ("prefs", "now", "until", "reason"),
    [
        (DeliveryPrefs(), "2024-05-01 12:00:00", None, "now"),
        (DeliveryPrefs(digest="15m"), "2024-05-01 12:07:10", "2024-05-01 12:15:00", "digest"),
        (DeliveryPrefs(digest="15m"), "2024-05-01 12:15:00", "2024-05-01 12:30:00", "digest"),
        (DeliveryPrefs(digest="1h"), "2024-05-01 12:59:59", "2024-05-01 13:00:00", "digest"),
        # Daily at 09:00 Moscow time = 06:00 UTC.
        (DeliveryPrefs(digest="daily", tz="Europe/Moscow"), "2024-05-01 05:00:00",
         "2024-05-01 06:00:00", "digest"),
        (DeliveryPrefs(digest="daily", tz="Europe/Moscow"), "2024-05-01 06:00:00",
         "2024-05-02 06:00:00", "digest"),
        # Quiet 23:00-07:00 Moscow = 20:00-04:00 UTC.
        (DeliveryPrefs(quiet=QUIET_MSK), "2024-05-01 19:59:00", None, "now"),
        (DeliveryPrefs(quiet=QUIET_MSK), "2024-05-01 21:00:00", "2024-05-02 04:00:00", "quiet"),
        (DeliveryPrefs(quiet=QUIET_MSK), "2024-05-02 01:00:00", "2024-05-02 04:00:00", "quiet"),
        (DeliveryPrefs(quiet=QUIET_MSK), "2024-05-02 04:00:00", None, "now"),
        # A digest window ending inside quiet hours is flushed when they end.
        (DeliveryPrefs(digest="1h", quiet=QUIET_MSK), "2024-05-01 19:30:00",
         "2024-05-02 04:00:00", "quiet"),
        (DeliveryPrefs(digest="1h", quiet=QUIET_MSK), "2024-05-01 18:30:00",
         "2024-05-01 19:00:00", "digest"),
        # Same-day quiet window, in UTC.
        (DeliveryPrefs(quiet=QuietHours(time(12), time(14))), "2024-05-01 13:00:00",
         "2024-05-01 14:00:00", "quiet"),
    ],
)  # fmt: skip
def test_plan(prefs: DeliveryPrefs, now: str, until: str | None, reason: str) -> None:
    plan = plan_delivery(prefs, _utc(now))
    assert plan.hold_until == (None if until is None else _utc(until))
    assert plan.reason == reason
    assert plan.send_now is (until is None)


def test_daily_digest_across_a_dst_change() -> None:
    prefs = DeliveryPrefs(digest="daily", tz="Europe/Berlin")
    # 2024-03-31: Berlin moves from UTC+1 to UTC+2 at 02:00 local.
    assert plan_delivery(prefs, _utc("2024-03-30 12:00:00")).hold_until == _utc(
        "2024-03-31 07:00:00"
    )
    assert plan_delivery(prefs, _utc("2024-03-29 12:00:00")).hold_until == _utc(
        "2024-03-30 08:00:00"
    )


def test_prefs_round_trip_and_validation() -> None:
    prefs = DeliveryPrefs.from_dict(
        {"digest": "1h", "quiet": {"start": "23:00", "end": "07:00", "tz": "Asia/Tokyo"}}
    )
    assert prefs.tz == "Asia/Tokyo" and prefs.quiet is not None
    assert DeliveryPrefs.from_dict(prefs.to_dict()) == prefs
    with pytest.raises(ValueError, match="digest"):
        DeliveryPrefs(digest="weekly")
    with pytest.raises(ValueError, match="time zone"):
        QuietHours.parse("23:00-07:00", "Mars/Olympus")
    with pytest.raises(ValueError, match="HH:MM"):
        QuietHours.parse("late-early")
    with pytest.raises(ValueError):
        plan_delivery(prefs, datetime(2024, 1, 1))  # naive
