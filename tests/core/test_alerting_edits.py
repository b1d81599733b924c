"""Backfill and replay never pose as edits: "edited: now matches" needs an earlier version here."""

from __future__ import annotations

from datetime import UTC, datetime

from service.core.alerting import InMemoryMatchState, PriorState, decide, process
from service.core.post import Post
from service.core.query.match import Match


def post(text: str, *, edited: bool = False, message_id: int = 1) -> Post:
    return Post(
        channel="chan",
        message_id=message_id,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        edited=edited,
        edit_date=datetime(2024, 9, 26, tzinfo=UTC) if edited else None,
    )


def test_a_post_first_seen_already_edited_alerts_as_a_plain_post() -> None:
    # Exports carry an edit time on most messages: a backfill must not say "edited".
    state = InMemoryMatchState()
    (alert,) = process(post("ceasefire", edited=True), [Match("a")], state)
    assert (alert.suppressed, alert.edited_now_matches) == (None, False)


def test_an_edit_after_a_version_that_matched_nothing_is_an_edit() -> None:
    state = InMemoryMatchState()
    assert process(post("nothing here"), [], state) == []
    (alert,) = process(post("now a ceasefire", edited=True), [Match("a")], state)
    assert (alert.suppressed, alert.edited_now_matches) == (None, True)


def test_replaying_the_same_file_twice_alerts_nothing_new_and_never_as_an_edit() -> None:
    state = InMemoryMatchState()
    first = process(post("ceasefire", edited=True), [Match("a")], state)
    again = process(post("ceasefire", edited=True), [Match("a")], state)
    assert [a.edited_now_matches for a in first + again] == [False, False]
    assert [a.suppressed for a in again] == ["edit"]


def test_decide_reads_earlier_versions_from_the_prior_state() -> None:
    edit = post("x", edited=True)
    fresh = decide(edit, [Match("a")], PriorState())[0]
    seen = decide(edit, [Match("a")], PriorState(earlier_version=True))[0]
    other_matched = decide(edit, [Match("a")], PriorState(matched_before=frozenset({"b"})))[0]
    assert [
        fresh.edited_now_matches,
        seen.edited_now_matches,
        other_matched.edited_now_matches,
    ] == [
        False,
        True,
        True,
    ]
