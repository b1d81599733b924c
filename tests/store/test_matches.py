"""Match state in a real Redis: edits, duplicates across workers, the alerts stream."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from service import constants
from service.core.alerting import process, text_key
from service.core.model import Highlight
from service.core.post import Post
from service.core.query.match import Match
from service.store.matches import RedisMatchState, alerted_key, matched_key, read_alerts


def post(text: str, message_id: int = 1, channel: str = "chan", edited: bool = False) -> Post:
    return Post(
        channel=channel,
        message_id=message_id,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        edited=edited,
    )


def test_alerts_go_to_the_stream_with_their_highlights(redis_client: redis.Redis) -> None:
    state = RedisMatchState(redis_client)
    highlight = Highlight(0, 9, "ceasefire")
    alerts = process(post("ceasefire agreed"), [Match("a", (highlight,))], state)
    [(entry_id, streamed)] = read_alerts(redis_client)
    assert entry_id
    assert streamed == alerts[0]
    assert streamed.highlights == (highlight,)
    assert redis_client.smembers(matched_key("chan/1")) == {b"a"}
    assert 0 < redis_client.ttl(matched_key("chan/1")) <= constants.MATCHED_POST_TTL_SECONDS


def test_edit_alerts_only_for_new_subscriptions(redis_client: redis.Redis) -> None:
    state = RedisMatchState(redis_client)
    process(post("v1"), [Match("a")], state)
    alerts = process(post("v2", edited=True), [Match("a"), Match("b")], state)
    assert [(a.subscription_id, a.suppressed, a.edited_now_matches) for a in alerts] == [
        ("a", "edit", False),
        ("b", None, True),
    ]
    assert [alert.subscription_id for _, alert in read_alerts(redis_client)] == ["a", "b"]


def test_duplicates_are_found_across_workers(redis_client: redis.Redis) -> None:
    first_worker = RedisMatchState(redis_client)
    second_worker = RedisMatchState(redis_client)
    process(post("Same text", 1, "origin"), [Match("a")], first_worker)
    alerts = process(post("same  text!", 5, "copy"), [Match("a")], second_worker)
    assert [(a.suppressed, a.duplicate_of) for a in alerts] == [("duplicate", "origin/1")]
    key = alerted_key("a", text_key("same text") or "")
    assert redis_client.get(key) == b"origin/1"
    assert 0 < redis_client.ttl(key) <= constants.ALERTED_TEXT_TTL_SECONDS
    assert len(read_alerts(redis_client)) == 1


def test_a_race_lost_at_record_time_becomes_a_duplicate(redis_client: redis.Redis) -> None:
    # Two workers read the state before either records: the second to record loses.
    first_worker = RedisMatchState(redis_client)
    second_worker = RedisMatchState(redis_client)
    key = text_key("same")
    prior = second_worker.prior("copy/5", key, ["a"])
    process(post("same", 1, "origin"), [Match("a")], first_worker)
    from service.core.alerting import decide

    decided = decide(post("same", 5, "copy"), [Match("a")], prior)
    assert decided[0].suppressed is None
    final = second_worker.record("copy/5", key, decided)
    assert [(a.suppressed, a.duplicate_of) for a in final] == [("duplicate", "origin/1")]
    assert len(read_alerts(redis_client)) == 1


def test_stream_is_capped(redis_client: redis.Redis) -> None:
    state = RedisMatchState(redis_client, stream="tgwatch:test-alerts")
    for number in range(5):
        process(post(f"text {number}", number), [Match("a")], state)
    assert redis_client.xlen("tgwatch:test-alerts") == 5
    assert read_alerts(redis_client, stream="tgwatch:test-alerts")[0][1].post["message_id"] == 0


def test_no_matches_write_nothing(redis_client: redis.Redis) -> None:
    assert process(post("nothing"), [], RedisMatchState(redis_client)) == []
    assert list(redis_client.scan_iter("tgwatch:*")) == []
