"""The suite's Redis claim never takes a database that holds someone else's data (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import _LOCK_KEY, _MARKER_KEY, _claim_database


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test alone (embedded), so its databases can be filled at will."""
    from service.redis import start_embedded

    handle = start_embedded(tmp_path / "redis")
    yield handle.url
    handle.close()


def _db(url: str, db: int) -> redis.Redis:
    return redis.Redis.from_url(f"{url}?db={db}")


def test_a_database_with_foreign_data_is_skipped_and_left_alone(private_server: str) -> None:
    foreign = _db(private_server, 1)
    foreign.set("someone:else", "precious")
    claimed = _claim_database(private_server)
    assert claimed == 2
    assert foreign.get("someone:else") == b"precious"
    assert not foreign.exists(_LOCK_KEY)
    assert not foreign.exists(_MARKER_KEY)
    foreign.close()


def test_a_database_marked_as_the_suites_own_is_claimed_despite_leftovers(
    private_server: str,
) -> None:
    leftover = _db(private_server, 1)
    leftover.set(_MARKER_KEY, "tgwatch test suite")
    leftover.set("tgwatch:left:by:a:killed:run", "1")
    assert _claim_database(private_server) == 1
    leftover.close()


def test_no_free_database_is_a_clear_error(private_server: str) -> None:
    for db in range(1, 16):
        client = _db(private_server, db)
        client.set("foreign", "x")
        client.close()
    with pytest.raises(RuntimeError, match="TGWATCH_TEST_REDIS_URL"):
        _claim_database(private_server)
