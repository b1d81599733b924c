"""A worker that never talks to Telegram never imports aiogram (3.5-4.3 s and ~155 MB of its
start-up when it did): `tgwatch worker` without a bot token, run for real."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from service.core.rules import RuleSet, Subscription
from service.store.rules import RuleStore

# A real `tgwatch` process: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_a_worker_without_a_bot_token_does_not_import_aiogram(
    redis_url: str, redis_client: redis.Redis
) -> None:
    RuleStore(redis_client).replace(RuleSet(subscriptions=(Subscription("s", "ceasefire"),)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("TGWATCH_")}
    env.update({"TGWATCH_REDIS_URL": redis_url, "TGWATCH_LOG_LEVEL": "warning"})
    # -X importtime lists every module the process imports, on stderr.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "service.cli", "worker", "--burst"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "workers.context" in imported  # the listing is the worker's
    assert "service.core.query.index" in imported
    assert not {name for name in imported if name.split(".")[0] == "aiogram"}
