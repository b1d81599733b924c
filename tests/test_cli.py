"""The tgwatch command: help everywhere, ingest counts, clean errors, posts and status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from service.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TGWATCH_REDIS_URL": redis_url, "TGWATCH_CHANNELS": "somechannel",
            "TGWATCH_PREVIEW_URL": "http://127.0.0.1:9", "TGWATCH_WORKERS": "1",
            "TGWATCH_DATA_DIR": str(tmp_path), **extra}  # fmt: skip


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm_and_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    """A live `tgwatch run` (preview poller on a dead address) stops on SIGTERM once running."""
    port = _free_port()
    env = _run_env(redis_url, tmp_path, TGWATCH_METRICS_PORT=str(port))
    command = [sys.executable, "-m", "service.cli", "run", "--no-demo"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    deadline = time.monotonic() + 90
    while not _ready(port):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "tgwatch run never served /healthz"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out.decode()
    assert b"listeners_stopped" in out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_cleanly_on_a_signal_from_its_first_moment(
    redis_url: str, tmp_path: Path, sig: int
) -> None:
    """A stop while `tgwatch run` is still starting is a clean stop (exit 0), not a kill."""
    env = _run_env(redis_url, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run", "--no-demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    # The earliest moment: as soon as the process catches SIGTERM (the command's first line),
    # long before it has imported its modules or started its workers.
    deadline = time.monotonic() + 60
    while not _catches_sigterm(proc.pid):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out


def _catches_sigterm(pid: int) -> bool:
    """The process has a handler for SIGTERM (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_run_never_runs_the_demo_on_a_configured_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TGWATCH_REDIS_URL set and no source, `run` refuses (exit 2) and touches nothing."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("tgwatch:rules:subscriptions:canary", "precious")
    client.hset("tgwatch:rules:subscriptions", "mine", '{"id": "mine", "query": "x"}')
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("TGWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TGWATCH_CHANNELS", raising=False)
    monkeypatch.delenv("TGWATCH_TELEGRAM_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2, result.output
    assert "no source is configured" in result.output
    assert client.hkeys("tgwatch:rules:subscriptions") == [b"mine"]
    assert client.get("tgwatch:rules:subscriptions:canary") == b"precious"
    client.close()


def test_a_bad_rules_file_stops_listen_with_its_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("subscriptions:\n  - id: a\n    query: '(oops'\n", encoding="utf-8")
    monkeypatch.setenv("TGWATCH_RULES_FILE", str(rules))
    result = CliRunner().invoke(cli, ["listen"])
    assert result.exit_code == 2
    assert f"{rules}:3" in result.output
