"""Finding 7: errors that are errors. Every HTTP error of the API is the documented JSON (no
text 500 whatever the body), a non-ASCII secret header at the bot's webhook is a 401, and a
command that cannot do its job exits non-zero with one line."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from service.sources.bot import SECRET_HEADER, BotListener
from tests.security.conftest import Api
from tests.sources.test_bot import SECRET, post_update, sample_updates, sink, webhook

__all__ = ["sink", "webhook"]  # the bot source's fixtures, used here

# Bodies that answered a text "500 Internal Server Error" before.
HOSTILE = [
    ("application/json", b'{"query": "x", "name": "\\udfff"}'),
    ("application/json", b'{"query": "\\ud800"}'),
    ("application/json", b"[" * 100_000 + b"]" * 100_000),
    ("application/json", b'{"query": "x", "targets": [{"telegram": 1, "quiet": "x"}]}'),
    ("application/json", b'{"query": "x", "targets": [{"telegram": 1, "quiet": {}}]}'),
    ("application/json; charset=nonsense", b'{"query": "x"}'),
    ("application/json", b'{"query": "x"}\xff'),
    ("application/json", b'{"query": NaN}'),
    ("application/json", b'{"query": "x", "limit": 1e999}'),
    ("application/json", b'{"query": "x", "limit": ' + b"9" * 5000 + b"}"),
    ("application/json", b'{"query": "x", "id": "' + b"a" * 5000 + b'"}'),
    ("text/plain", b"query=x"),
]
DOCUMENTED = {400, 401, 403, 404, 405, 409, 413, 422, 429, 503}


@pytest.mark.parametrize(("content_type", "body"), HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("path", ["/v1/subscriptions", "/v1/test"])
async def test_hostile_bodies_get_the_json_error(
    api: Api, path: str, content_type: str, body: bytes
) -> None:
    """Each body is refused with the documented JSON error, or (a body that is JSON after all,
    whatever its declared charset) served; never a text 500."""
    headers = {"X-API-Key": api.keys["a"], "Content-Type": content_type}
    async with api.client.post(path, data=body, headers=headers) as response:
        raw = await response.read()
    data = json.loads(raw)
    if response.status < 300:
        assert "error" not in data
        return
    assert response.status in DOCUMENTED, (response.status, raw[:200])
    error = data["error"]
    assert set(error) >= {"code", "message"} and isinstance(error["message"], str)


async def test_aiohttp_errors_are_json_too(api: Api) -> None:
    for method, path, body in (
        ("GET", "/v1/nothing", None),
        ("PUT", "/v1/subscriptions", None),
        ("POST", "/v1/subscriptions", b"{" + b" " * (300 * 1024) + b"}"),
    ):
        headers = {"X-API-Key": api.keys["a"], "Content-Type": "application/json"}
        async with api.client.request(method, path, data=body, headers=headers) as response:
            raw = await response.read()
        assert response.status in (404, 405, 413)
        assert json.loads(raw)["error"]["code"] in ("not_found", "method_not_allowed", "too_large")


async def test_an_unexpected_error_is_a_json_500_without_a_trace(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.api.subscriptions as handlers

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(handlers, "stored_entities", broken)
    status, body = await api.call("POST", "/v1/subscriptions", {"query": "x"})
    assert status == 500 and body == {
        "error": {"code": "internal", "message": "an internal error; it was logged"}
    }


@pytest.mark.parametrize("header", ["é", "секрет", "\u00ff" * 40, SECRET + "é"])
async def test_a_non_ascii_webhook_secret_is_a_401(webhook: BotListener, header: str) -> None:
    url = f"http://127.0.0.1:{webhook.webhook_port}/hook"
    headers = {SECRET_HEADER: header, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, data="{}", headers=headers) as response,
    ):
        assert response.status == 401


async def test_the_right_secret_still_passes(webhook: BotListener, fixtures_dir: Path) -> None:
    assert await post_update(webhook, sample_updates(fixtures_dir)[0], SECRET) == 200


def test_api_exits_1_with_one_line_when_its_port_is_taken(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.commands.api import api

    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(api, ["--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("tgwatch: cannot serve the API")
    assert "Traceback" not in result.output


def test_apikeys_create_without_a_name_exits_1(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.commands.api import apikeys

    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(apikeys, ["create", " "])
    assert result.exit_code == 1 and "needs a name" in result.stderr
    assert "Traceback" not in result.output
