"""The HTTP API on a real aiohttp server on loopback, with a real Redis."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from service import constants
from service.api.http import ROUTES, build_app
from service.core.delivery import DeliveryJob, WebhookTarget
from service.core.model import Alert, Enrichment
from service.core.post import Post
from service.store.apikeys import ApiKeyStore
from service.store.deliveries import LOG_PREFIX, Ledger
from service.store.matches import RedisMatchState
from service.store.posts import PostStore
from service.store.rules import RuleStore
from service.store.subscribers import scoped_id

SECRET = "whsec_" + base64.b64encode(b"api-test-secret-of-32-bytes-long").decode()
HOOK = {"webhook": {"url": "https://example.org/hook", "secret": SECRET}}


class Api:
    def __init__(
        self, client: TestClient[Any, Any], key: str, admin_key: str, other_key: str
    ) -> None:
        self.client, self.key, self.admin_key, self.other_key = client, key, admin_key, other_key

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"X-API-Key": self.key if key is None else key}
        if body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None


@pytest.fixture
async def api(redis_client: redis.Redis) -> AsyncIterator[Api]:
    keys = ApiKeyStore(redis_client)
    key, _ = keys.create("acme", "api:acme")
    admin_key, _ = keys.create("ops", "api:ops", admin=True)
    other_key, _ = keys.create("other", "api:other")
    server = TestServer(build_app(redis_client, ["configured_chan"]), host="127.0.0.1")
    async with TestClient(server) as client:
        yield Api(client, key, admin_key, other_key)


async def test_auth(api: Api, redis_client: redis.Redis) -> None:
    status, body = await api.call("GET", "/v1/subscriptions", key="")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.call("GET", "/v1/subscriptions", key=api.key + "x")
    assert status == 401
    status, body = await api.call("GET", "/v1/subscriptions", key="tgw_nope_nope")
    assert status == 401
    assert (await api.call("GET", "/v1/subscriptions"))[0] == 200
    # Only the hash is stored.
    assert api.key.encode() not in b"".join(redis_client.hvals(constants.API_KEYS_KEY))
    status, body = await api.call("GET", "/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_subscription_crud(api: Api, redis_client: redis.Redis) -> None:
    version = RuleStore(redis_client).version()
    status, body = await api.call(
        "POST",
        "/v1/subscriptions",
        {"id": "lavrov", "name": "Lavrov", "query": "Лавров OR lavrov", "targets": [HOOK]},
    )
    assert status == 201, body
    assert body["targets"] == [{"webhook": {"url": "https://example.org/hook", "secret": "***"}}]
    assert body["owner"] == "api:acme"
    assert RuleStore(redis_client).version() > version
    _, ruleset = RuleStore(redis_client).load()
    [stored] = ruleset.subscriptions
    assert stored.id == scoped_id("lavrov", "api:acme") and stored.owner == "api:acme"
    assert stored.notify[0] == {**HOOK, "owner": "api:acme"}

    status, body = await api.call("POST", "/v1/subscriptions", {"id": "lavrov", "query": "x"})
    assert status == 409 and body["error"]["code"] == "conflict"
    status, body = await api.call("GET", "/v1/subscriptions")
    assert [s["id"] for s in body["subscriptions"]] == ["lavrov"]
    status, body = await api.call("GET", "/v1/subscriptions/lavrov")
    assert status == 200 and body["query"] == "Лавров OR lavrov"

    status, body = await api.call(
        "PATCH", "/v1/subscriptions/lavrov", {"paused": True, "mode": "digest"}
    )
    assert status == 200 and body["paused"] and body["mode"] == "digest"
    _, ruleset = RuleStore(redis_client).load()
    assert ruleset.subscriptions[0].paused

    # Another client sees nothing of it; an admin sees it.
    status, body = await api.call("GET", "/v1/subscriptions/lavrov", key=api.other_key)
    assert status == 404
    status, body = await api.call("GET", "/v1/subscriptions", key=api.admin_key)
    assert [s["id"] for s in body["subscriptions"]] == [stored.id]  # the admin sees stored ids

    status, _ = await api.call("DELETE", "/v1/subscriptions/lavrov")
    assert status == 204
    assert (await api.call("GET", "/v1/subscriptions/lavrov"))[0] == 404
    assert (await api.call("DELETE", "/v1/subscriptions/lavrov"))[0] == 404


async def test_validation_errors(api: Api) -> None:
    status, body = await api.call("POST", "/v1/subscriptions", {"query": "(ceasefire OR truce"})
    assert status == 400
    assert body["error"]["code"] == "invalid_query" and body["error"]["position"] == 0
    status, body = await api.call("POST", "/v1/subscriptions", {"query": "a AND"})
    assert status == 400 and body["error"]["position"] == 5
    status, body = await api.call("POST", "/v1/subscriptions", {"query": "entity:nobody"})
    assert status == 400 and "nobody" in body["error"]["message"]
    status, body = await api.call("POST", "/v1/subscriptions", {"name": "no query"})
    assert status == 422 and body["error"]["code"] == "invalid_body"
    status, body = await api.call(
        "POST", "/v1/subscriptions", {"query": "x", "targets": [{"webhook": {"url": "ftp://x"}}]}
    )
    assert status == 422 and body["error"]["code"] == "invalid_target"
    assert "whsec" not in body["error"]["message"]
    status, body = await api.call("POST", "/v1/subscriptions", {"query": "x", "mode": "loud"})
    assert status == 422
    status, body = await api.call("POST", "/v1/subscriptions", data=b"{not json", key=None)
    assert status == 400 and body["error"]["code"] == "invalid_json"


async def test_test_endpoint(api: Api, redis_client: redis.Redis) -> None:
    posts = PostStore(redis_client)
    now = datetime.now(UTC)
    posts.store(Post("mfa_russia", 1, now, "Лавров провёл переговоры"), Enrichment())
    posts.store(Post("mfa_russia", 2, now, "Погода"), Enrichment())
    status, body = await api.call("POST", "/v1/test", {"query": "лавров"})
    assert status == 200
    assert body["scanned"] == 2 and body["total_hits"] == 1
    [hit] = body["hits"]
    assert hit["link"] == "https://t.me/mfa_russia/1"
    assert hit["highlights"] == [{"start": 0, "end": 6, "text": "Лавров"}]
    status, body = await api.call("POST", "/v1/test", {"query": "лавров AND ("})
    assert status == 400 and body["error"]["position"] == 12


async def test_alerts_endpoints_and_redelivery(api: Api, redis_client: redis.Redis) -> None:
    await api.call("POST", "/v1/subscriptions", {"id": "mine", "query": "x", "targets": [HOOK]})
    mine_id = scoped_id("mine", "api:acme")
    post = Post("chan", 5, datetime.now(UTC), "x").to_dict()
    state = RedisMatchState(redis_client)
    for sub, owner in ((mine_id, "api:acme"), ("theirs", "api:other")):
        alert = Alert(sub, post, matched_at=1.0)
        redis_client.xadd(constants.ALERTS_STREAM, {"alert": json.dumps(alert.to_dict())})
        assert state.index_owner_alert(alert, owner)
        assert not state.index_owner_alert(alert, owner)  # once, even when handed over again
    status, body = await api.call("GET", "/v1/alerts")
    assert status == 200 and [a["subscription_id"] for a in body["alerts"]] == ["mine"]
    assert body["next_before"] is None
    status, body = await api.call("GET", "/v1/alerts?limit=1", key=api.admin_key)
    assert [a["subscription_id"] for a in body["alerts"]] == ["theirs"]
    status, body = await api.call(
        "GET", f"/v1/alerts?limit=1&before={body['next_before']}", key=api.admin_key
    )
    assert [a["subscription_id"] for a in body["alerts"]] == [mine_id]
    assert (await api.call("GET", "/v1/alerts?limit=0"))[0] == 422
    assert (await api.call("GET", "/v1/alerts?before=nonsense"))[0] == 422

    endpoint = WebhookTarget(HOOK["webhook"]["url"], (SECRET,), "api:acme").endpoint_id
    status, body = await api.call("GET", "/v1/endpoints")
    assert body["endpoints"] == [
        {"id": endpoint, "url": "https://example.org/hook", "subscriptions": ["mine"]}
    ]
    redis_client.lpush(LOG_PREFIX + endpoint, json.dumps({"status": 500, "at": "t"}))
    status, body = await api.call("GET", f"/v1/endpoints/{endpoint}/deliveries")
    assert status == 200 and body["deliveries"] == [{"status": 500, "at": "t"}]
    assert (await api.call("GET", f"/v1/endpoints/{endpoint}/deliveries", key=api.other_key))[
        0
    ] == 404

    mine = Alert(mine_id, post, matched_at=1.0)
    target = WebhookTarget(HOOK["webhook"]["url"], (SECRET,), "api:acme")
    Ledger(redis_client).dead_letter(DeliveryJob(mine, target, 8), "500")
    assert (await api.call("POST", f"/v1/alerts/{mine.id}/redeliver", key=api.other_key))[0] == 404
    status, body = await api.call("POST", f"/v1/alerts/{mine.id}/redeliver")
    assert status == 202 and body["redelivered"] == 1
    assert redis_client.llen(constants.DELIVERY_DEAD_KEY) == 0
    assert Ledger(redis_client).dead_letter_count("api:acme") == 0
    assert (await api.call("POST", f"/v1/alerts/{mine.id}/redeliver"))[0] == 404
    status, body = await api.call("POST", "/v1/dead-letters/redeliver", key=api.admin_key)
    assert status == 202 and body["redelivered"] == 0


async def test_channels(api: Api) -> None:
    status, body = await api.call("POST", "/v1/channels", {"channel": "@durov"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.call("POST", "/v1/channels", {"channel": "@Durov"}, key=api.admin_key)
    assert status == 201 and body == {"channel": "durov", "added": True}
    status, body = await api.call(
        "POST", "/v1/channels", {"channel": "bad name"}, key=api.admin_key
    )
    assert status == 422
    status, body = await api.call("GET", "/v1/channels")
    assert body["polled"] == ["configured_chan", "durov"] and body["added"] == ["durov"]
    assert (await api.call("DELETE", "/v1/channels/durov", key=api.admin_key))[0] == 204
    assert (await api.call("DELETE", "/v1/channels/durov", key=api.admin_key))[0] == 404


async def test_openapi_documents_every_route(api: Api) -> None:
    status, doc = await api.call("GET", "/v1/openapi.json", key="")
    assert status == 200 and doc["openapi"].startswith("3.1")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api.client.app.router.routes()  # type: ignore[union-attr]
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert len(served) == len(ROUTES)
    refs = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])


def test_apikeys_commands(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from service.commands.api import apikeys

    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    created = runner.invoke(apikeys, ["create", "acme"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("tgw_")
    client = redis.Redis.from_url(redis_url)
    try:
        assert ApiKeyStore(client).verify(key) is not None
        listing = runner.invoke(apikeys, ["list"])
        assert "acme  api:acme" in listing.output and key not in listing.output
        assert runner.invoke(apikeys, ["revoke", "acme"]).exit_code == 0
        assert ApiKeyStore(client).verify(key) is None
        assert runner.invoke(apikeys, ["revoke", "acme"]).exit_code == 1
    finally:
        client.close()
