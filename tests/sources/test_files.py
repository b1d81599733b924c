"""Files as a source: one bad line, item or file costs only itself; `ingest` says what it did."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from click.testing import CliRunner

from service.cli import cli
from service.sources.files import (
    EXIT_SET_ASIDE,
    FileReport,
    ingest_files,
    parse_channel_name,
    parse_timezone,
    summarize,
)
from service.store.rejected import list_rejected
from tests.sources import ListSink


def update(message_id: int, text: str = "post") -> dict[str, Any]:
    return {
        "update_id": message_id,
        "channel_post": {
            "message_id": message_id,
            "date": 1727000000 + message_id,
            "chat": {"id": -1001234567890, "username": "chan", "type": "channel"},
            "text": f"{text} {message_id}",
        },
    }


def jsonl(path: Path, ids: range) -> Path:
    path.write_text("".join(json.dumps(update(n)) + "\n" for n in ids), encoding="utf-8")
    return path


async def test_invalid_utf8_costs_one_line_not_the_file(tmp_path: Path) -> None:
    lines = [json.dumps(update(n)).encode() for n in range(1, 1001)]
    lines[41] = lines[41].replace(b"post", b"p\xc3\x28st")  # an invalid two-byte sequence
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b"\n".join(lines))
    sink = ListSink()
    report = await ingest_files([path], sink)
    assert (report.posts, report.set_aside, report.failed_files) == (999, 1, [])
    (rejected,) = sink.rejected
    assert rejected.index == 42 and "UTF-8" in rejected.reason
    assert "\\udcc3" in rejected.raw
    json.dumps(rejected.to_dict(), ensure_ascii=False).encode("utf-8")


async def test_a_lone_surrogate_in_one_of_three_files_costs_one_item(tmp_path: Path) -> None:
    first = jsonl(tmp_path / "a.jsonl", range(1, 1001))
    second = tmp_path / "b.json"
    items = [update(n) for n in range(2001, 2004)]
    body = json.dumps(items).replace('"post 2002"', '"post \\ud800 2002"')
    second.write_text(body, encoding="utf-8")
    third = jsonl(tmp_path / "c.jsonl", range(3001, 4001))
    sink = ListSink()
    report = await ingest_files([first, second, third], sink)
    assert report.posts == report.enqueued == 2002
    assert report.set_aside == 1
    (rejected,) = sink.rejected
    assert "\\ud800" in rejected.raw
    json.dumps(rejected.to_dict(), ensure_ascii=False).encode("utf-8")


async def test_lone_surrogate_reaches_a_real_redis_reject_list_intact(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    from service.queue import Enqueuer

    path = tmp_path / "b.json"
    path.write_text(
        json.dumps([update(1), update(2)]).replace('"post 2"', '"\\udfff"'), encoding="utf-8"
    )
    enqueuer = Enqueuer(redis_client, batch_size=10, batch_wait=0.01)
    report = await ingest_files([path], enqueuer)
    await enqueuer.close()
    assert (report.enqueued, report.set_aside) == (1, 1)
    (stored,) = list_rejected(redis_client)
    assert "\\udfff" in stored["raw"]


async def test_an_unparsable_file_is_set_aside_and_the_others_go_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    good = jsonl(tmp_path / "good.jsonl", range(1, 4))
    sink = ListSink()
    report = await ingest_files([bad, good], sink)
    assert (report.enqueued, report.set_aside, len(report.failed_files)) == (3, 1, 1)
    assert sink.rejected[0].index == "file"


async def test_channel_names_an_export_known_only_by_id(tmp_path: Path) -> None:
    export = {"name": "Chan", "type": "private_channel", "id": 4242, "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1727000000", "text": "hello"},
        {"id": 2, "type": "service", "date_unixtime": "1727000001", "action": "pin_message"},
    ]}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    unnamed, named = ListSink(), ListSink()
    await ingest_files([path], unnamed)
    report = await ingest_files([path], named, channel="secret_chan")
    assert [post.channel for post in unnamed.posts] == ["c/4242"]
    assert [(post.channel, post.channel_id) for post in named.posts] == [
        ("secret_chan", -1000000004242)
    ]
    assert report.skipped == {"service": 1}


async def test_channel_never_renames_a_channel_that_has_a_username(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "dump.jsonl", range(1, 3))
    sink = ListSink()
    await ingest_files([path], sink, channel="other")
    assert {post.channel for post in sink.posts} == {"chan"}


async def test_old_export_dates_follow_the_time_zone(tmp_path: Path) -> None:
    export = {"name": "Chan", "type": "public_channel", "id": 7, "messages": [
        {"id": 1, "type": "message", "date": "2020-03-01T12:00:00", "text": "old"},
    ]}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    utc, moscow = ListSink(), ListSink()
    await ingest_files([path], utc)
    await ingest_files([path], moscow, tz=ZoneInfo("Europe/Moscow"))
    assert utc.posts[0].date.hour == 12
    assert moscow.posts[0].date.hour == 9


def test_summary_fails_when_items_were_set_aside_unless_allowed() -> None:
    report = FileReport(files=2, set_aside=3)
    report.reasons.update({"message N has no date": 2, "invalid JSON": 1})
    report.skipped.update({"service": 4})
    lines, code = summarize(report)
    assert code == EXIT_SET_ASIDE
    assert "  skipped on purpose: 4 service" in lines
    assert any("2 × message N has no date" in line for line in lines)
    assert summarize(report, allow_set_aside=True)[1] == 0
    everything_failed = FileReport(files=1, set_aside=1, failed_files=["x: unreadable"])
    assert summarize(everything_failed, allow_set_aside=True)[1] == EXIT_SET_ASIDE
    assert summarize(FileReport(files=1))[1] == 0


@pytest.mark.parametrize("value", ["bad name", "a/b", "x" * 65, "", "@"])
def test_channel_option_is_checked(value: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        parse_channel_name(value)


def test_channel_and_zone_options_are_read() -> None:
    assert parse_channel_name("@MID_Russia") == "MID_Russia"
    assert parse_timezone("utc") is UTC
    assert parse_timezone("Europe/Moscow") == ZoneInfo("Europe/Moscow")
    with pytest.raises(ValueError, match="time zone"):
        parse_timezone("Mars/Olympus")


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("TGWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("env")
def test_ingest_command_exits_non_zero_with_a_summary(tmp_path: Path) -> None:
    export = {"name": "Chan", "type": "private_channel", "id": 99, "messages": [
        {"id": 1, "type": "message", "date": "2020-03-01T12:00:00", "text": "old post"},
        {"id": 2, "type": "message", "text": "no date at all"},
        {"id": 3, "type": "service", "date": "2020-03-01T12:01:00", "action": "pin_message"},
    ]}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    runner = CliRunner()
    failed = runner.invoke(cli, ["ingest", str(path), "--channel", "old_chan", "--tz",
                                 "Europe/Moscow"])  # fmt: skip
    assert failed.exit_code == EXIT_SET_ASIDE, failed.output
    assert "1 enqueued" in failed.output and "1 set aside" in failed.output
    assert "skipped on purpose: 1 service" in failed.output
    assert "message N has no date_unixtime or date" in failed.output
    assert "--allow-set-aside" in failed.output
    allowed = runner.invoke(cli, ["ingest", str(path), "--allow-set-aside"])
    assert allowed.exit_code == 0, allowed.output
    assert runner.invoke(cli, ["worker", "--burst"]).exit_code == 0
    posts = runner.invoke(cli, ["posts", "old_chan", "--format", "jsonl"])
    (record,) = [json.loads(line) for line in posts.output.splitlines() if line.startswith("{")]
    assert (record["channel"], record["date"]) == ("old_chan", "2020-03-01T09:00:00+00:00")


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("option", "value"), [("--channel", "not a name"), ("--tz", "Nowhere/Atlantis")]
)
def test_ingest_command_refuses_bad_options(tmp_path: Path, option: str, value: str) -> None:
    path = jsonl(tmp_path / "d.jsonl", range(1, 2))
    result = CliRunner().invoke(cli, ["ingest", str(path), option, value])
    assert result.exit_code == 2
    assert option in result.output
