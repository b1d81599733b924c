"""Fixtures for the safety suite: the HTTP API with two tenants and an admin, on a real Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from service.api.http import build_app
from service.store.apikeys import ApiKeyStore
from tests.delivery.conftest import make_context, receiver

__all__ = ["make_context", "receiver"]  # the delivery suite's fixtures, used here too

SECRET = "whsec_" + base64.b64encode(b"safety-suite-secret-key-32-bytes").decode()


def hook(url: str = "https://example.org/hook", secret: Any = SECRET) -> dict[str, Any]:
    return {"webhook": {"url": url, "secret": secret}}


class Api:
    """Requests as tenant ``a`` (default), tenant ``b`` or the ``admin``."""

    def __init__(self, client: TestClient[Any, Any], keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys

    async def call(
        self, method: str, path: str, body: Any = None, who: str = "a", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"X-API-Key": self.keys.get(who, who), **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            raw = await response.read()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw


@pytest.fixture
async def api(redis_client: redis.Redis) -> AsyncIterator[Api]:
    store = ApiKeyStore(redis_client)
    keys = {
        "a": store.create("alpha", "api:alpha")[0],
        "b": store.create("beta", "api:beta")[0],
        "admin": store.create("ops", "api:ops", admin=True)[0],
    }
    server = TestServer(build_app(redis_client, []), host="127.0.0.1")
    async with TestClient(server) as client:
        yield Api(client, keys)
