"""Finding 3: a webhook target is decided when the subscription is created or imported — by the
API, by a rules file (`rules check`, `subscriptions import`) — not first at send time."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from service.store.rules import RuleStore
from tests.security.conftest import SECRET, Api, hook

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433:8080/",
    "http://[::ffff:127.0.0.1]:8080/",
    "http://10.0.0.5:8080/hook",
    "http://localhost:8080/",
    "http://0:8080/",
    "https://user:pw@example.org/hook",
    "http://example.org:22/",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_api_refuses_the_target_at_creation(api: Api, url: str) -> None:
    status, body = await api.call(
        "POST", "/v1/subscriptions", {"query": "x", "targets": [hook(url)]}
    )
    assert status == 422, body
    assert body["error"]["code"] == "invalid_target"
    assert url not in body["error"]["message"]
    status, body = await api.call("POST", "/v1/subscriptions", {"id": "ok", "query": "x"})
    assert status == 201
    status, body = await api.call("PATCH", "/v1/subscriptions/ok", {"targets": [hook(url)]})
    assert status == 422 and body["error"]["code"] == "invalid_target"


async def test_api_refuses_weak_secrets(api: Api) -> None:
    for secret in ("whsec_dGVzdA==", "short", ["x"], []):
        status, body = await api.call(
            "POST", "/v1/subscriptions", {"query": "x", "targets": [hook(secret=secret)]}
        )
        assert status == 422 and body["error"]["code"] == "invalid_target", body
        assert "dGVzdA" not in body["error"]["message"]
    status, _ = await api.call("POST", "/v1/subscriptions", {"query": "x", "targets": [hook()]})
    assert status == 201


def _rules(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "subscriptions:\n"
        "  - id: ok\n"
        "    query: lavrov\n"
        "  - id: metadata\n"
        "    query: lavrov\n"
        "    notify:\n"
        f'      - webhook: {{url: "{url}", secret: "{SECRET}"}}\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("url", REFUSED[:4])
def test_rules_check_names_the_line_of_a_refused_target(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.commands.rules import rules

    monkeypatch.chdir(tmp_path)
    path = _rules(tmp_path, url)
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:7:" in result.stderr and "refused" in result.stderr
    assert url not in result.stderr and SECRET not in result.stderr


def test_import_refuses_and_writes_nothing(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.commands.subscriptions import subscriptions

    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    path = _rules(tmp_path, REFUSED[0])
    result = CliRunner().invoke(subscriptions, ["import", str(path)])
    assert result.exit_code == 1
    assert f"{path}:7:" in result.stderr
    assert RuleStore(redis_client).records() == []


def test_loopback_allowed_by_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.commands.rules import rules

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS", "true")
    result = CliRunner().invoke(rules, ["check", str(_rules(tmp_path, "http://127.0.0.1:8080/"))])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(rules, ["check", str(_rules(tmp_path, "http://10.0.0.1:8080/"))])
    assert result.exit_code == 1
