"""Format detection: each input shape goes to its parser; anything else is one FormatError."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.formats.detect import parse_bytes, parse_file
from service.core.formats.result import FormatError

UPDATE: dict[str, Any] = {
    "update_id": 1,
    "channel_post": {
        "message_id": 5,
        "chat": {"id": -1001, "title": "T", "username": "chan", "type": "channel"},
        "date": 1727000000,
        "text": "hello #tag",
        "entities": [{"offset": 6, "length": 4, "type": "hashtag"}],
    },
}
EXPORT: dict[str, Any] = {
    "name": "T",
    "type": "public_channel",
    "id": 1001,
    "messages": [
        {"id": 5, "type": "message", "date_unixtime": "1727000000", "text": "hello"},
    ],
}


@pytest.mark.parametrize(
    ("name", "source", "count"),
    [
        ("mfa_russia_sample.json", "botapi", 23),
        ("mfa_russia_export.json", "export", 21),
        ("mfa_russia_preview.html", "preview", 9),
        ("mfa_russia_preview_2.html", "preview", 2),
        ("mfa_russia_export_2021.json", "export", 5),
    ],
)
def test_fixture_files_are_recognized(
    fixtures_dir: Path, name: str, source: str, count: int
) -> None:
    result = parse_file(fixtures_dir / name)
    assert result.rejected == []
    assert len(result.posts) == count
    assert {post.source for post in result.posts} == {source}


@pytest.mark.parametrize(
    ("data", "source"),
    [
        (json.dumps(UPDATE).encode(), "botapi"),
        (json.dumps([UPDATE]).encode(), "botapi"),
        (json.dumps({"ok": True, "result": [UPDATE]}).encode(), "botapi"),
        ((json.dumps(UPDATE) + "\n" + json.dumps(UPDATE) + "\n").encode(), "botapi"),
        (json.dumps(EXPORT, ensure_ascii=False, indent=1).encode(), "export"),
        (json.dumps({"chats": {"list": [EXPORT]}}).encode(), "export"),
        (b"\xef\xbb\xbf" + json.dumps(EXPORT).encode(), "export"),
    ],
)
def test_shapes_are_recognized(data: bytes, source: str) -> None:
    result = parse_bytes(data, source_name="in")
    assert result.posts
    assert {post.source for post in result.posts} == {source}
    assert result.posts[0].message_id == 5


def test_json_lines_keep_going_past_a_bad_line() -> None:
    data = (json.dumps(UPDATE) + "\n{broken\n" + json.dumps(UPDATE)).encode()
    result = parse_bytes(data, source_name="live.jsonl")
    assert len(result.posts) == 2
    assert [(r.source, r.index) for r in result.rejected] == [("live.jsonl", 2)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"\xff\xfe\x00\x01garbage", "not UTF-8"),
        (b"hello world", "not JSON, JSON lines or HTML"),
        (b"<html><body><p>a blog</p></body></html>", "not a t.me/s preview page"),
        (b'{"foo": 1}', "neither a Telegram Desktop export"),
        (b"42", "neither"),
        (b'{"ok": false, "description": "Unauthorized"}', "Unauthorized"),
        (b'{"name": "g", "type": "private_group", "id": 1, "messages": []}', "not of a channel"),
    ],
)
def test_unusable_input_is_one_format_error(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_bytes(data, source_name="x")


def test_unreadable_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read"):
        parse_file(tmp_path / "missing.json")


@pytest.mark.parametrize("name", ["mfa_russia_sample.json", "mfa_russia_export.json"])
def test_truncated_files_never_raise_anything_but_format_error(
    fixtures_dir: Path, name: str
) -> None:
    data = (fixtures_dir / name).read_bytes()
    for cut in range(1, len(data), len(data) // 23):
        with contextlib.suppress(FormatError):
            parse_bytes(data[:cut], source_name=name)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
MESSAGE_KEYS = ["message_id", "chat", "date", "edit_date", "text", "entities", "caption",
                "caption_entities", "forward_origin", "media_group_id",
                "reply_to_message"]  # fmt: skip
# No example database: the fuzz cases are cheap to regenerate and leave nothing in the checkout.
FUZZ: dict[str, Any] = {
    "max_examples": 150,
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
}
EXPORT_KEYS = ["id", "type", "date_unixtime", "edited_unixtime", "text", "text_entities",
               "forwarded_from", "reply_to_message_id", "media_type", "from_id"]  # fmt: skip


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None
)
@given(key=st.sampled_from(MESSAGE_KEYS), value=JSON)
def test_odd_update_fields_only_ever_reject(key: str, value: object) -> None:
    update = json.loads(json.dumps(UPDATE))
    update["channel_post"][key] = value
    result = parse_bytes(json.dumps([update, UPDATE]).encode(), source_name="fuzz")
    assert len(result.posts) + len(result.rejected) + sum(result.skipped.values()) == 2


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None
)
@given(key=st.sampled_from(EXPORT_KEYS), value=JSON)
def test_odd_export_fields_only_ever_reject_or_skip(key: str, value: object) -> None:
    export = json.loads(json.dumps(EXPORT))
    export["messages"][0][key] = value
    export["messages"].append({**EXPORT["messages"][0], "id": 6})
    result = parse_bytes(json.dumps(export).encode(), source_name="fuzz")
    assert 6 in {post.message_id for post in result.posts} | set(
        sum((post.album_items for post in result.posts), ())
    )


@settings(**FUZZ)
@given(value=JSON)
def test_any_json_document_parses_or_raises_format_error(value: object) -> None:
    with contextlib.suppress(FormatError):
        parse_bytes(json.dumps(value).encode(), source_name="fuzz")


def test_deeply_nested_json_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="nested"):
        parse_bytes(b"[" * 200_000 + b"]" * 200_000, source_name="deep")


def test_parsers_stay_pure() -> None:
    """The parsers import no client library: checked in a fresh interpreter."""
    code = (
        "import sys, service.core.formats.detect; "
        "print(','.join(m for m in ('aiogram', 'redis', 'rq', 'httpx') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.strip() == ""
