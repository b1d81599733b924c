"""structlog set-up: JSON lines for machines, a readable console for people — for every log line
of the process, the standard library's (rq, aiogram, aiohttp) included.

Our own events go through structlog; records of libraries that log through ``logging`` are
routed through the same processors by a root handler, so ``TGWATCH_LOG_FORMAT=json`` output is
all JSON. Context bound with ``structlog.contextvars`` (a job id, a post, a delivery) appears on
every line logged meanwhile. Secret-looking keys are masked, and the values of the process's
secrets (bot token, webhook secrets) are scrubbed from every line, whoever logged it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

# Keys whose values are never written, whatever a caller binds by mistake.
SECRET_KEYS = frozenset(
    {"token", "telegram_token", "secret", "webhook_secret", "api_key", "password", "api_hash"}
)
# Libraries chatty at INFO (aiogram logs every update; aiohttp every request): WARNING and up.
QUIET_LOGGERS = ("aiogram", "aiohttp.access", "rq.worker", "rq.job", "rq.scheduler", "httpx")
MASK = "***"


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any secret-looking key with a marker."""
    for key in event_dict:
        if key in SECRET_KEYS:
            event_dict[key] = MASK
    return event_dict


class ScrubValues:
    """A processor that removes known secret values from every string of an event."""

    def __init__(self, values: Iterable[str]) -> None:
        # Short values would mask ordinary words; real tokens and secrets are long.
        self.values = tuple(sorted({v for v in values if len(v) >= 8}, key=len, reverse=True))

    def __call__(
        self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.values:
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str):
                clean = value
                for secret in self.values:
                    if secret in clean:
                        clean = clean.replace(secret, MASK)
                event_dict[key] = clean
        return event_dict


def configure_logging(
    fmt: str = "console", level: str = "info", secrets: Iterable[str] = ()
) -> None:
    """Configure structlog and the standard library logging once, at a process's start."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        ScrubValues(secrets),
    ]
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(numeric, logging.WARNING))
        # rq adds handlers of its own when it finds none; ours (the root's) must be the one.
        logger.handlers[:] = []
        logger.propagate = True
