"""Alert semantics: edits alert only for new subscriptions; identical texts are duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from service.core.alerting import InMemoryMatchState, PriorState, decide, process, text_key
from service.core.model import Alert, Highlight
from service.core.post import Post
from service.core.query.match import Match


def post(text: str, message_id: int = 1, channel: str = "chan", edited: bool = False) -> Post:
    return Post(
        channel=channel,
        message_id=message_id,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        edited=edited,
    )


def outcome(alerts: list[Alert]) -> list[tuple[str, str | None, str | None, bool]]:
    return [(a.subscription_id, a.suppressed, a.duplicate_of, a.edited_now_matches) for a in alerts]


def test_first_match_alerts_and_carries_highlights() -> None:
    state = InMemoryMatchState()
    highlight = Highlight(0, 5, "hello")
    alerts = process(post("hello"), [Match("s", (highlight,))], state)
    assert outcome(alerts) == [("s", None, None, False)]
    assert alerts[0].highlights == (highlight,)
    assert state.stream == alerts


def test_edit_alerts_only_for_new_subscriptions() -> None:
    state = InMemoryMatchState()
    process(post("v1"), [Match("a")], state)
    edited = post("v2", edited=True)
    alerts = process(edited, [Match("a"), Match("b")], state)
    assert outcome(alerts) == [("a", "edit", None, False), ("b", None, None, True)]


def test_losing_a_match_retracts_nothing_and_regaining_it_does_not_realert() -> None:
    state = InMemoryMatchState()
    process(post("v1"), [Match("a")], state)
    assert process(post("v2", edited=True), [], state) == []
    alerts = process(post("v3", edited=True), [Match("a")], state)
    assert outcome(alerts) == [("a", "edit", None, False)]
    assert len(state.stream) == 1


def test_identical_text_in_another_post_is_a_duplicate_naming_the_original() -> None:
    state = InMemoryMatchState()
    process(post("Breaking: ceasefire", 1, "first"), [Match("a")], state)
    alerts = process(post("breaking — CEASEFIRE!", 7, "copier"), [Match("a"), Match("b")], state)
    assert outcome(alerts) == [("a", "duplicate", "first/1", False), ("b", None, None, False)]


def test_duplicate_is_per_subscription_and_needs_identical_text() -> None:
    state = InMemoryMatchState()
    process(post("ceasefire now", 1), [Match("a")], state)
    assert outcome(process(post("ceasefire now, again", 2), [Match("a")], state)) == [
        ("a", None, None, False)
    ]


def test_suppressed_duplicate_does_not_become_the_original() -> None:
    state = InMemoryMatchState()
    process(post("same", 1), [Match("a")], state)
    process(post("same", 2), [Match("a")], state)
    alerts = process(post("same", 3), [Match("a")], state)
    assert outcome(alerts) == [("a", "duplicate", "chan/1", False)]


def test_posts_without_words_are_never_duplicates() -> None:
    state = InMemoryMatchState()
    assert text_key("") is None
    assert text_key("🔥 …") is None
    process(post("", 1), [Match("a")], state)
    assert outcome(process(post("", 2), [Match("a")], state)) == [("a", None, None, False)]


def test_decide_is_pure_over_prior_state() -> None:
    prior = PriorState(matched_before=frozenset({"a"}), alerted_by={"b": "other/9"})
    alerts = decide(post("x", edited=True), [Match("a"), Match("b"), Match("c")], prior, now=5.0)
    assert outcome(alerts) == [
        ("a", "edit", None, False),
        ("b", "duplicate", "other/9", False),
        ("c", None, None, True),
    ]
    assert alerts[0].matched_at == 5.0
    assert alerts[0].post["message_id"] == 1


def test_alert_ids_are_stable_per_version_and_subscription() -> None:
    first = decide(post("x"), [Match("a")], PriorState())[0]
    again = decide(post("x"), [Match("a")], PriorState())[0]
    other = decide(post("y"), [Match("a")], PriorState())[0]
    assert first.id == again.id != other.id


def test_a_backtest_state_need_not_keep_the_alerts() -> None:
    state = InMemoryMatchState(keep_stream=False)
    process(post("Breaking: ceasefire", 1), [Match("a")], state)
    alerts = process(post("breaking — CEASEFIRE!", 7, "copier"), [Match("a")], state)
    assert outcome(alerts) == [("a", "duplicate", "chan/1", False)]
    assert state.stream == []
