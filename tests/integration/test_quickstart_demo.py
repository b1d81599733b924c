"""The README's first command: `tgwatch run` on a fresh machine (embedded Redis, bundled sample)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Real `tgwatch` processes: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_demo_runs_on_embedded_redis_and_alerts_arrive(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TGWATCH_")}
    env["TGWATCH_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", "--workers", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "mfa_russia: 21 posts, 23 versions" in out
    assert "failed jobs: 0" in out
    webhooks = re.search(
        r"alerts by webhook: (\d+) received, signatures verified \((\d+) refused", out
    )
    chat = re.search(r"alerts in the Telegram chat: (\d+) messages", out)
    assert webhooks and int(webhooks.group(1)) > 0 and webhooks.group(2) == "0", out
    assert chat and int(chat.group(1)) > 0, out
    # The embedded Redis kept its data (append-only file) under the data dir.
    assert any((tmp_path / "data").rglob("*.aof")) or any((tmp_path / "data").rglob("appendonly*"))
