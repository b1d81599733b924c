"""The short chaos run (scripts/chaos.py --short): workers killed mid-batch and a Redis restart
cost no alert and recover within the goal (issue 10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_meets_the_goal() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--short"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "for every fault: met" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.endswith(" ok")]
    assert len(rows) == 2
