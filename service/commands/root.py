"""What every `tgwatch` command shares: its composition root (settings read once, logging, Redis)
and the one way configuration and rules-file errors are printed.

A command calls ``open_root()`` first: the settings are read once for the process (a bad value
is one line naming the variable, exit code 2), logging is configured with the process's secrets
scrubbed, the process's box for webhook secrets is installed (``service.core.secretbox``), and
Redis is connected (the embedded server when no URL is set).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
import structlog

from service.config import ConfigError, Settings, load_settings
from service.core import secretbox
from service.core.rules import RulesError
from service.logging import configure_logging
from service.redis import RedisHandle, connect

log = structlog.get_logger(__name__)

# Under the data dir: the embedded Redis of the demo, apart from real data.
DEMO_DATA = "demo"


@dataclass
class Root:
    """Settings and the Redis handle of one CLI process."""

    settings: Settings
    redis: RedisHandle


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    click.echo(f"tgwatch: {message}", err=True)
    sys.exit(code)


def read_settings() -> Settings:
    """The settings of this process, with logging configured; exit 2 on a bad value."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    secretbox.install(settings.secret_box())
    return settings


@contextmanager
def open_root(settings: Settings | None = None, *, demo: bool = False) -> Iterator[Root]:
    """Connect to Redis (embedded when no URL is set) with the process's settings.

    The demo always gets a Redis of its own, embedded under ``<data dir>/demo`` and emptied
    first, so every demo run shows the whole pipeline and never touches real data — not even a
    configured TGWATCH_REDIS_URL.
    """
    settings = settings or read_settings()
    if demo:
        if settings.redis_url is not None:
            log.warning("demo_ignores_redis_url", hint="the demo runs on its own embedded Redis")
        settings = settings.model_copy(
            update={"data_dir": settings.data_dir / DEMO_DATA, "redis_url": None}
        )
    try:
        handle = connect(settings.redis_url, settings.data_dir)
        if demo:
            handle.client.flushdb()
    except Exception as exc:  # a connection failure of any kind: one clear line, no traceback
        fail(f"cannot reach Redis ({type(exc).__name__}): check TGWATCH_REDIS_URL", 2)
    try:
        yield Root(settings, handle)
    finally:
        handle.close()


def echo_rules_problems(exc: RulesError, path: Path | str, prefix: str = "") -> None:
    """Every problem of a rules file, one ``file:line: message`` line each, on stderr."""
    for problem in exc.problems:
        where = f"{path}:{problem.line}" if problem.line else str(path)
        click.echo(f"{prefix}{where}: {problem.message}", err=True)


def load_rules_file(root: Root) -> None:
    """TGWATCH_RULES_FILE, if set, is imported at start (added and changed, nothing removed)."""
    path = root.settings.rules_file
    if path is None:
        return
    from service.core.rules import load_rules
    from service.subscriptions_file import import_ruleset

    policy = root.settings.delivery.target_policy()
    try:
        ruleset = load_rules(path, targets=policy, regex_ms=root.settings.limits.regex_ms)
        summary = import_ruleset(root.redis.client, ruleset, policy=policy)
    except RulesError as exc:
        echo_rules_problems(exc, path, "tgwatch: TGWATCH_RULES_FILE ")
        sys.exit(2)
    except (OSError, ValueError) as exc:
        fail(f"TGWATCH_RULES_FILE {path}: {exc}", 2)
    log.info("rules_file_loaded", file=str(path), added=len(summary.added),
             changed=len(summary.changed))  # fmt: skip


class StopSignals:
    """SIGINT and SIGTERM caught from a command's first line: a signal that arrives before the
    event loop runs (while heavy modules load, while workers start) is remembered, and the loop
    picks it up with ``bridge`` — so a stop at any moment is a clean stop, never a kill."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def install(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested.set()

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]  # what signal() returned
