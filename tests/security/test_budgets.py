"""Finding 5: no tenant can make the shared machinery expensive for the others — costly
regexes are refused when saved, each owner has a budget of subscriptions and regexes, a page of
alerts is a bounded number of Redis calls whatever the stream holds, and query tests are rate
limited, bounded in time and run on a pool of their own."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from service import constants
from service.api.http import build_app
from service.config import LimitSettings
from service.core.model import Alert, Enrichment
from service.core.post import Post
from service.store.apikeys import ApiKeyStore
from service.store.posts import PostStore
from tests.security.conftest import Api

EXPENSIVE = "/.{500}x/i"  # exhausts RE2's DFA: ~15-30 ms a post where a plain regex costs 0.02


class CountingRedis(redis.Redis):
    """A client that counts its round trips (a pipeline is one)."""

    calls = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.calls += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        CountingRedis.calls += 1
        return super().pipeline(transaction, shard_hint)


@pytest.fixture
async def limited(redis_url: str, redis_client: redis.Redis) -> AsyncIterator[Api]:
    """The API with small budgets, on a client that counts its Redis round trips."""
    keys = ApiKeyStore(redis_client)
    made = {"a": keys.create("alpha", "api:alpha")[0], "b": keys.create("beta", "api:beta")[0]}
    client = CountingRedis.from_url(redis_url)
    limits = LimitSettings(subscriptions=3, regexes=2, test_per_minute=3, test_seconds=0.5)
    server = TestServer(build_app(client, [], limits=limits), host="127.0.0.1")
    async with TestClient(server) as http:
        yield Api(http, made)
    client.close()


async def test_an_expensive_regex_is_refused_when_saved(api: Api) -> None:
    status, body = await api.call("POST", "/v1/subscriptions", {"query": f"lavrov {EXPENSIVE}"})
    assert status == 400 and body["error"]["code"] == "invalid_query", body
    assert "costly" in body["error"]["message"] and body["error"]["position"] == 7
    status, body = await api.call("POST", "/v1/subscriptions", {"query": r"/лавров\w*/i"})
    assert status == 201, body
    status, body = await api.call("PATCH", f"/v1/subscriptions/{body['id']}", {"query": EXPENSIVE})
    assert status == 400 and "costly" in body["error"]["message"]
    status, body = await api.call("POST", "/v1/test", {"query": EXPENSIVE})
    assert status == 400 and "costly" in body["error"]["message"]


def test_an_expensive_regex_in_a_rules_file_names_its_line() -> None:
    from service.core.rules import RulesError, parse_rules

    text = f"subscriptions:\n  - id: a\n    query: x\n  - id: b\n    query: '{EXPENSIVE}'\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert str(caught.value.problems[0]).startswith("line 5:")
    assert "costly" in str(caught.value)


async def test_owner_budgets(limited: Api) -> None:
    for number in range(3):
        status, _ = await limited.call("POST", "/v1/subscriptions", {"query": f"word{number}"})
        assert status == 201
    status, body = await limited.call("POST", "/v1/subscriptions", {"query": "one more"})
    assert status == 422 and body["error"]["code"] == "limit_reached"
    assert "TGWATCH_LIMIT_SUBSCRIPTIONS" in body["error"]["message"]
    # Another owner has its own budget.
    assert (await limited.call("POST", "/v1/subscriptions", {"query": "/a+/ /b+/"}, who="b"))[
        0
    ] == 201
    status, body = await limited.call("POST", "/v1/subscriptions", {"query": "/c+/"}, who="b")
    assert status == 422 and "TGWATCH_LIMIT_REGEXES" in body["error"]["message"]


async def test_a_page_of_alerts_is_a_bounded_number_of_redis_calls(
    limited: Api, redis_client: redis.Redis
) -> None:
    status, _mine = await limited.call("POST", "/v1/subscriptions", {"query": "x"})
    post = Post("chan", 1, datetime.now(UTC), "x").to_dict()
    other = json.dumps(Alert("someone-else", post, matched_at=1.0).to_dict())
    with redis_client.pipeline(transaction=False) as pipe:
        for _ in range(20_000):
            pipe.xadd(constants.ALERTS_STREAM, {"alert": other})
        pipe.execute()
    CountingRedis.calls = 0
    status, page = await limited.call("GET", "/v1/alerts?limit=1")
    assert status == 200 and page == {"alerts": [], "next_before": None}
    assert CountingRedis.calls <= 5, CountingRedis.calls


async def test_query_tests_are_rate_limited_per_key(limited: Api) -> None:
    for _ in range(3):
        assert (await limited.call("POST", "/v1/test", {"query": "x"}))[0] == 200
    status, body = await limited.call("POST", "/v1/test", {"query": "x"})
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert (await limited.call("POST", "/v1/test", {"query": "x"}, who="b"))[0] == 200


async def test_a_query_test_stops_at_its_budgets(redis_client: redis.Redis) -> None:
    store = PostStore(redis_client)
    now = datetime.now(UTC)
    long_text = "Лавров провёл переговоры о перемирии и санкциях. " * 80
    for channel in range(10):
        for number in range(100):
            store.store(Post(f"chan{channel}", number, now, long_text), Enrichment())
    key, _ = ApiKeyStore(redis_client).create("alpha", "api:alpha")
    for limits, scanned in (
        (LimitSettings(test_posts=150), lambda n: n == 150),  # the post budget
        (LimitSettings(test_seconds=0.001), lambda n: n < 1000),  # the time budget
    ):
        server = TestServer(build_app(redis_client, [], limits=limits), host="127.0.0.1")
        async with TestClient(server) as http:
            started = time.monotonic()
            body = {"query": "перемирие AND /санкц\\w+/i"}
            async with http.post("/v1/test", json=body, headers={"X-API-Key": key}) as answer:
                assert answer.status == 200
                result = await answer.json()
            assert time.monotonic() - started < 10
        assert result["truncated"] is True and scanned(result["scanned"]), result["scanned"]


async def test_slow_query_tests_do_not_stall_other_requests(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight query tests held running must not take the threads other requests need."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def held(*_args: Any, **_kwargs: Any) -> Any:
        started.release()
        release.wait(30)
        raise AssertionError("released")

    import service.api.subscriptions as handlers

    monkeypatch.setattr(handlers, "run_test", held)
    tests = [
        asyncio.create_task(api.call("POST", "/v1/test", {"query": "x"}, who=who))
        for who in ("a", "b", "admin") * 3
    ][:8]
    try:
        await asyncio.to_thread(started.acquire, True, 10)  # at least one is running
        status, _ = await asyncio.wait_for(api.call("GET", "/v1/subscriptions"), 5)
        assert status == 200
    finally:
        release.set()
        await asyncio.gather(*tests, return_exceptions=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TGWATCH_LIMIT_SUBSCRIPTIONS", "0"),
        ("TGWATCH_LIMIT_REGEXES", "many"),
        ("TGWATCH_LIMIT_REGEX_MS", "0"),
        ("TGWATCH_LIMIT_TEST_SECONDS", "inf"),
    ],
)
def test_a_bad_limit_is_one_line_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.config import ConfigError, load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value).startswith(f"{name}:") and "\n" not in str(caught.value)
