"""The tgwatch command: help everywhere, ingest counts, clean errors, posts and status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from service.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "tgwatch")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("TGWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return {"TGWATCH_REDIS_URL": redis_url}


def test_ingest_reports_counts_and_bad_files(env: dict[str, str], fixtures_dir: Path,
                                             tmp_path: Path) -> None:  # fmt: skip
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{ this is not json", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(fixtures_dir / "mfa_russia_sample.json"),
                                 str(garbage)])  # fmt: skip
    assert result.exit_code == 1, result.output  # an item (the garbage file) was set aside
    assert "23 enqueued" in result.output
    assert "1 set aside" in result.output
    rejected = runner.invoke(cli, ["rejected"])
    entries = [json.loads(line) for line in rejected.output.splitlines() if line.startswith("{")]
    assert entries[0]["source"] == str(garbage)

    again = runner.invoke(cli, ["ingest", str(fixtures_dir / "mfa_russia_sample.json")])
    assert "0 enqueued" in again.output
    assert "23 already seen" in again.output


def test_a_bad_setting_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_LOG_LEVEL", "loud")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2
    assert "TGWATCH_LOG_LEVEL" in result.output


def test_unreachable_redis_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_REDIS_URL", "redis://127.0.0.1:1/0")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2
    assert "cannot reach Redis" in result.output
    assert "Traceback" not in result.output


def test_posts_and_status_after_a_burst_worker(env: dict[str, str], fixtures_dir: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["ingest", str(fixtures_dir / "mfa_russia_sample.json")])
    worked = runner.invoke(cli, ["worker", "--burst"])
    assert worked.exit_code == 0, worked.output
    posts = runner.invoke(cli, ["posts", "mfa_russia", "--limit", "3", "--format", "jsonl"])
    records = [json.loads(line) for line in posts.output.splitlines()]
    assert [r["message_id"] for r in records] == sorted((r["message_id"] for r in records),
                                                        reverse=True)  # fmt: skip
    assert len(records) == 3
    status = runner.invoke(cli, ["status", "--format", "json"])
    report = json.loads(status.output)
    queues = {q["name"]: q for q in report["queues"]}
    assert queues["tgwatch-posts"]["queued"] == 0
    assert report["channels"][0]["channel"] == "mfa_russia"


def test_run_stops_cleanly_on_sigterm_and_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    """A live `tgwatch run` (preview poller on a dead address) stops on SIGTERM within seconds."""
    env = {**os.environ, "TGWATCH_REDIS_URL": redis_url, "TGWATCH_CHANNELS": "somechannel",
           "TGWATCH_PREVIEW_URL": "http://127.0.0.1:9", "TGWATCH_WORKERS": "1",
           "TGWATCH_DATA_DIR": str(tmp_path)}  # fmt: skip
    command = [sys.executable, "-m", "service.cli", "run", "--no-demo"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    time.sleep(4)
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert b"listeners_stopped" in out


def test_a_bad_rules_file_stops_listen_with_its_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("subscriptions:\n  - id: a\n    query: '(oops'\n", encoding="utf-8")
    monkeypatch.setenv("TGWATCH_RULES_FILE", str(rules))
    result = CliRunner().invoke(cli, ["listen"])
    assert result.exit_code == 2
    assert f"{rules}:3" in result.output
