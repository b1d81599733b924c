"""Logging: every line of the process through structlog — the standard library's too — with
bound context, secret keys masked and secret values scrubbed, whoever logged them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from service.logging import configure_logging

TOKEN = "123456:AAF-very-secret-token-value"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_library_records_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    logging.getLogger("rq.worker").warning("job %s failed", "abc")
    logging.getLogger("aiogram.dispatcher").error("update handling failed")
    lines = _lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["job abc failed", "update handling failed"]
    assert lines[0]["logger"] == "rq.worker" and lines[0]["level"] == "warning"


def test_bound_context_is_on_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    structlog.contextvars.bind_contextvars(job_id="job-1", post="mfa_russia/1008@abc")
    structlog.get_logger("workers.pipeline").info("posts_processed", received=1)
    logging.getLogger("rq.job").warning("from the library")
    for line in _lines(capsys.readouterr().err):
        assert line["job_id"] == "job-1" and line["post"] == "mfa_russia/1008@abc"


def test_secrets_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info", secrets=[TOKEN])
    structlog.get_logger("x").warning("send_failed", url=f"https://api/bot{TOKEN}/sendMessage",
                                      token="anything")  # fmt: skip
    logging.getLogger("aiogram").warning("request to /bot%s/getMe failed", TOKEN)
    err = capsys.readouterr().err
    assert TOKEN not in err
    first, second = _lines(err)
    assert first["token"] == "***" and "***" in str(first["url"])
    assert "***" in str(second["event"])


def test_libraries_chatty_at_info_are_kept_at_warning(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    logging.getLogger("aiogram.event").info("Update id=1 is handled")
    logging.getLogger("service.anything").info("kept")
    assert [line["event"] for line in _lines(capsys.readouterr().err)] == ["kept"]


def test_the_secrets_keys_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    from service.config import load_settings

    keys = ("first-secrets-key-0123", "older-secrets-key-4567")
    settings = load_settings(_env_file=None, secrets_key=",".join(keys))
    configure_logging("json", "info", settings.secret_values())
    structlog.get_logger("x").warning("misconfigured", detail=f"keys were {keys[0]} {keys[1]}")
    err = capsys.readouterr().err
    assert keys[0] not in err and keys[1] not in err and "***" in err
