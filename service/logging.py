"""structlog set-up: JSON lines for machines, a readable console for people."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are never written, whatever a caller binds by mistake.
SECRET_KEYS = frozenset(
    {"token", "telegram_token", "secret", "webhook_secret", "api_key", "password"}
)


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any secret-looking key with a marker."""
    for key in event_dict:
        if key in SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog and the standard library logging once, at a process's start."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info if fmt == "json" else lambda _l, _m, e: e,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    # aiogram logs every update at INFO, and its exceptions may quote request URLs that embed the
    # bot token; keep it at WARNING and let our own events say what happened.
    for name in ("aiogram", "aiohttp.access", "rq.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)
