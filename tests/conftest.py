"""Shared fixtures: a real Redis (the machine's, or an embedded one) in a database of our own."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "service" / "data" / "sample"
_LOCK_KEY = "__tgwatch_test_lock__"
# Set in every database the suite claims; a database with data but without it is not ours.
_MARKER_KEY = "__tgwatch_test_suite__"


def _server_url() -> str | None:
    """The Redis the tests use: TGWATCH_TEST_REDIS_URL, else 127.0.0.1:6379 if it answers."""
    explicit = os.environ.get("TGWATCH_TEST_REDIS_URL")
    if explicit:
        return explicit
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return "redis://127.0.0.1:6379"
    except OSError:
        return None


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server URL without a database index; embedded when no server runs."""
    url = _server_url()
    if url is not None:
        yield url
        return
    from service.redis import start_embedded

    handle = start_embedded(tmp_path_factory.mktemp("redis"))
    yield handle.url
    handle.close()


def _claim_database(server_url: str) -> int:
    """Claim a database index of our own: one that is empty or carries the suite's marker.

    Parallel runs share the server, so the claim is a lock taken with SET NX; a database that
    holds anything else (a developer's own data) is never claimed, and never touched beyond
    taking and giving back the lock.
    """
    for db in range(1, 16):
        client = redis.Redis.from_url(server_url, db=db)
        try:
            if not client.set(_LOCK_KEY, str(os.getpid()), nx=True, ex=3600):
                continue
            ours = client.exists(_MARKER_KEY) or client.dbsize() == 1
            if ours:
                client.set(_MARKER_KEY, "tgwatch test suite")
                return db
            client.delete(_LOCK_KEY)
        finally:
            client.close()
    raise RuntimeError(
        "no Redis database index (1-15) is free for the tests: each holds data that is not the "
        "suite's own; set TGWATCH_TEST_REDIS_URL to a server of your own"
    )


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A URL of an empty database of our own, emptied again (lock included) afterwards."""
    db = _claim_database(redis_server_url)
    client = redis.Redis.from_url(redis_server_url, db=db)
    keep = {_LOCK_KEY.encode(), _MARKER_KEY.encode()}
    for key in client.scan_iter(count=1000):
        if key not in keep:
            client.delete(key)
    if redis_server_url.startswith("unix://"):
        url = f"{redis_server_url}?db={db}"
    else:
        url = f"{redis_server_url}/{db}"
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fixtures_dir() -> Path:
    """The real-shaped sample shipped in the package: the same files on every machine (a shared
    copy elsewhere may be older than the sample this checkout extends)."""
    return SAMPLE_DIR


pytest_plugins = ["tests.fakes.botapi"]
