"""The ops endpoints on a real aiohttp server on loopback, async and threaded."""

from __future__ import annotations

import json
import operator
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker

from service import constants
from service.core.delivery import DeliveryStatus
from service.metrics import Metrics
from service.ops import (
    Readiness,
    async_readiness,
    bound_port,
    ops_app,
    redis_ready,
    start_ops_server,
    start_ops_server_thread,
    sync_readiness,
    workers_registered,
)

Serve = Callable[[Metrics, Readiness], Awaitable[str]]


def always(result: dict[str, bool]) -> Readiness:
    async def check() -> dict[str, bool]:
        return result

    return check


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start ops apps on 127.0.0.1 (free ports); yields a starter returning the base URL."""
    runners: list[web.AppRunner] = []

    async def start(metrics: Metrics, readiness: Readiness) -> str:
        runner = await start_ops_server(ops_app(metrics, readiness), "127.0.0.1", 0)
        runners.append(runner)
        return f"http://127.0.0.1:{bound_port(runner)}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_metrics_endpoint(serve: Serve) -> None:
    metrics = Metrics()
    metrics.post_seen("preview", "durov", 2)
    base = await serve(metrics, always({}))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    assert 'tgwatch_posts_seen_total{channel="durov",source="preview"} 2.0' in text
    assert "# TYPE tgwatch_stage_duration_seconds histogram" in text


async def test_metrics_endpoint_speaks_openmetrics(serve: Serve, redis_client: redis.Redis) -> None:
    """Prometheus asks for OpenMetrics first; the whole exposition must parse as such."""
    metrics = Metrics()
    metrics.attach_redis(redis_client)
    metrics.delivery("webhook", DeliveryStatus.DEAD)
    base = await serve(metrics, always({}))
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/metrics", headers=headers) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await response.text()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"tgwatch_webhook_dead_letters", "tgwatch_webhook_dead_lettered"} <= names
    assert "tgwatch_queue_depth" in names


async def test_metrics_endpoint_reads_queue_depth(serve: Serve, redis_client: redis.Redis) -> None:
    queue = Queue(constants.POSTS_QUEUE, connection=redis_client)
    queue.enqueue(operator.add, 1, 2)
    queue.enqueue(operator.add, 3, 4)
    metrics = Metrics()
    metrics.attach_redis(redis_client)
    base = await serve(metrics, always({}))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert f'tgwatch_queue_depth{{queue="{constants.POSTS_QUEUE}"}} 2.0' in text
    assert "tgwatch_redis_up 1.0" in text


async def test_healthz(serve: Serve) -> None:
    base = await serve(Metrics(), always({"redis": False}))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
        assert response.status == 200  # alive even when not ready
        assert await response.json() == {"status": "ok"}


async def test_readyz_ready(serve: Serve) -> None:
    base = await serve(Metrics(), always({"redis": True, "listeners": True}))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body == {"ready": True, "checks": {"redis": True, "listeners": True}, "failed": []}


async def test_readyz_names_the_failed_checks(serve: Serve) -> None:
    checks = {"redis": True, "workers": False, "listeners": False}
    base = await serve(Metrics(), always(checks))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["ready"] is False
    assert body["failed"] == ["listeners", "workers"]


async def test_readyz_when_the_check_itself_breaks(serve: Serve) -> None:
    async def broken() -> dict[str, bool]:
        raise RuntimeError("boom")

    base = await serve(Metrics(), broken)
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["failed"] == ["readiness"]


async def test_async_readiness_runs_sync_and_async_checks(redis_client: redis.Redis) -> None:
    async def listeners_running() -> bool:
        return True

    def broken() -> bool:
        raise OSError("down")

    readiness = async_readiness(
        {
            "redis": lambda: redis_ready(redis_client),
            "listeners": listeners_running,
            "broken": broken,
        }
    )
    assert await readiness() == {"redis": True, "listeners": True, "broken": False}


def test_redis_ready(redis_client: redis.Redis, dead_redis: redis.Redis) -> None:
    assert redis_ready(redis_client) is True
    assert redis_ready(dead_redis) is False


def test_workers_registered(redis_client: redis.Redis, dead_redis: redis.Redis) -> None:
    queues = [constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE]
    assert workers_registered(redis_client, queues) is False
    posts_worker = SimpleWorker([constants.POSTS_QUEUE], connection=redis_client)
    posts_worker.register_birth()
    try:
        assert workers_registered(redis_client, [constants.POSTS_QUEUE]) is True
        assert workers_registered(redis_client, queues) is False  # deliveries has none
        both = SimpleWorker(queues, connection=redis_client)
        both.register_birth()
        assert workers_registered(redis_client, queues) is True
        both.register_death()
    finally:
        posts_worker.register_death()
    assert workers_registered(redis_client, queues) is False
    assert workers_registered(dead_redis, queues) is False


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode()


def test_threaded_server_for_sync_workers(redis_client: redis.Redis) -> None:
    metrics = Metrics()
    metrics.post_processed(7)
    ready = {"value": True}
    readiness = sync_readiness(
        {"redis": lambda: redis_ready(redis_client), "flag": lambda: ready["value"]}
    )
    server = start_ops_server_thread(metrics, readiness, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, text = get(f"{base}/metrics")
        assert status == 200
        assert "tgwatch_posts_processed_total 7.0" in text
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/readyz")[0] == 200
        ready["value"] = False
        status, body = get(f"{base}/readyz")
        assert status == 503
        assert json.loads(body)["failed"] == ["flag"]
    finally:
        server.stop()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{server.port}/healthz")


def test_threaded_server_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            start_ops_server_thread(Metrics(), dict, "127.0.0.1", taken.getsockname()[1])
