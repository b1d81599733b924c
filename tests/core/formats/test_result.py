"""Rejected and ParseResult: the JSON form of a rejection and the truncation of its raw item."""

from __future__ import annotations

import pytest

from service.core.formats.result import RAW_LIMIT, FormatError, ParseResult, Rejected


@pytest.mark.parametrize("index", [3, "chats/0/messages/7"])
def test_rejected_round_trips_through_json_form(index: int | str) -> None:
    rejected = Rejected.of("file.json", index, "message has no date", {"id": 1, "text": "é"})
    assert Rejected.from_dict(rejected.to_dict()) == rejected
    assert rejected.raw == '{"id": 1, "text": "é"}'


def test_rejected_raw_is_truncated() -> None:
    rejected = Rejected.of("f", 0, "too big", "x" * (RAW_LIMIT * 3))
    assert len(rejected.raw) == RAW_LIMIT
    assert rejected.raw.endswith("…")


def test_rejected_raw_of_unserializable_item_falls_back_to_repr() -> None:
    rejected = Rejected.of("f", 0, "odd", {1, 2})
    assert "{1, 2}" in rejected.raw


def test_rejected_from_dict_refuses_a_bad_index() -> None:
    with pytest.raises(ValueError, match="index"):
        Rejected.from_dict({"source": "f", "index": 1.5, "reason": "r", "raw": ""})


def test_format_error_is_a_value_error() -> None:
    assert issubclass(FormatError, ValueError)


def test_parse_result_extend_adds_everything() -> None:
    first = ParseResult(rejected=[Rejected.of("a", 0, "r", 1)], read=2)
    first.extend(ParseResult(rejected=[Rejected.of("b", 1, "r", 2)], read=3))
    assert first.read == 5
    assert [rejected.source for rejected in first.rejected] == ["a", "b"]
