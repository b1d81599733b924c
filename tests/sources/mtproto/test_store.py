"""Channel and account leases, refusals, cached refs and channel pace in a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from service.store.accounts import (
    AccountStore,
    list_accounts,
    next_interval,
    register_account,
    remove_account,
)
from service.store.leases import FALLBACK_ACCOUNT
from tests.sources.mtproto.conftest import wait_for


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[AccountStore]:
    accounts = AccountStore.from_url(redis_url)
    yield accounts
    await accounts.aclose()


async def test_a_channel_lease_has_one_holder_and_a_cap(store: AccountStore) -> None:
    assert await store.acquire_channel("alpha", "a1", "p1", 30, cap=2) == 1
    assert await store.acquire_channel("alpha", "a2", "p2", 30, cap=2) == 0
    assert await store.acquire_channel("alpha", "a1", "p1", 30, cap=2) == 1  # renewing is fine
    assert await store.acquire_channel("bravo", "a1", "p1", 30, cap=2) == 1
    assert await store.acquire_channel("charlie", "a1", "p1", 30, cap=2) == -1  # full
    assert await store.holders(["alpha", "bravo", "charlie"]) == {
        "alpha": "a1", "bravo": "a1", "charlie": None
    }  # fmt: skip
    assert await store.held_counts(["a1", "a2"]) == {"a1": 2, "a2": 0}


async def test_a_lease_runs_out_unless_renewed(store: AccountStore) -> None:
    await store.acquire_channel("alpha", "a1", "p1", 0.3, cap=5)

    async def free() -> bool:
        return (await store.holders(["alpha"]))["alpha"] is None

    await wait_for(free, seconds=5, what="the lease ran out")
    assert await store.held_counts(["a1"]) == {"a1": 0}  # counted where read: no sweeper
    assert await store.acquire_channel("alpha", "a2", "p2", 30, cap=5) == 1
    assert await store.renew_channels("a1", "p1", 30, ["alpha"]) == {"alpha"}  # lost to a2


async def test_renewing_keeps_a_lease_and_retakes_one_nobody_took(store: AccountStore) -> None:
    await store.acquire_channel("alpha", "a1", "p1", 30, cap=5)
    assert await store.renew_channels("a1", "p1", 30, ["alpha"]) == set()

    async def gone() -> bool:
        return (await store.holders(["alpha"]))["alpha"] is None

    await store.release_channel("alpha", "a1", "p1")
    assert await gone()
    assert await store.renew_channels("a1", "p1", 30, ["alpha"]) == set()  # free: taken again
    assert (await store.holders(["alpha"]))["alpha"] == "a1"


async def test_another_process_of_the_same_account_is_another_holder(store: AccountStore) -> None:
    await store.acquire_channel("alpha", "a1", "old-process", 30, cap=5)
    assert await store.acquire_channel("alpha", "a1", "new-process", 30, cap=5) == 0
    await store.release_channel("alpha", "a1", "new-process")  # not its lease: a no-op
    assert (await store.holders(["alpha"]))["alpha"] == "a1"


async def test_an_account_takes_a_channel_back_from_the_preview_fallback(
    store: AccountStore,
) -> None:
    assert await store.acquire_channel("alpha", FALLBACK_ACCOUNT, "p1", 30, cap=10**9,
                                       preempt=False) == 1  # fmt: skip
    assert await store.acquire_channel("alpha", "a1", "p2", 30, cap=5, preempt=False) == 0
    assert await store.acquire_channel("alpha", "a1", "p2", 30, cap=5) == 1
    assert await store.renew_channels(FALLBACK_ACCOUNT, "p1", 30, ["alpha"]) == {"alpha"}
    # The fallback never preempts an account.
    assert await store.acquire_channel("alpha", FALLBACK_ACCOUNT, "p1", 30, cap=10**9) == 0


async def test_an_unusable_account_frees_its_channels_at_once(
    store: AccountStore, redis_client: redis.Redis
) -> None:
    for entry in ("alpha", "bravo"):
        await store.acquire_channel(entry, "a1", "p1", 300, cap=5)
    await store.acquire_channel("charlie", "a2", "p2", 300, cap=5)
    assert await store.mark_unusable("a1", "banned", "account unusable: banned") == 2
    assert await store.holders(["alpha", "bravo", "charlie"]) == {
        "alpha": None, "bravo": None, "charlie": "a2"
    }  # fmt: skip
    record = await store.account("a1")
    assert (record.state, record.usable, record.reason) == (
        "banned",
        False,
        "account unusable: banned",
    )
    register_account(redis_client, "a1", 42, "@a1")  # logging in again makes it usable
    assert (await store.account("a1")).usable


async def test_one_process_runs_an_account(store: AccountStore) -> None:
    assert await store.acquire_account("a1", "p1", 30)
    assert not await store.acquire_account("a1", "p2", 30)
    assert await store.acquire_account("a1", "p1", 30)
    assert await store.running(["a1", "a2"]) == {"a1"}
    await store.release_account("a1", "p2")
    assert await store.running(["a1"]) == {"a1"}
    await store.release_account("a1", "p1")
    assert await store.running(["a1"]) == set()


async def test_refusals_cached_refs_and_fallback_records(store: AccountStore) -> None:
    await store.refuse("alpha", "a1", "private")
    assert await store.refusals("alpha") == {"a1": "private"}
    ref = {"channel_id": 5, "access_hash": 77, "username": "Alpha", "title": "A", "joined": True}
    await store.cache_ref("a1", "alpha", ref)
    assert await store.cached_ref("a1", "alpha") == ref
    assert await store.cached_ref("a2", "alpha") is None  # access hashes are per account
    await store.set_fallback("alpha", "refused: private", polled=True)
    assert (await store.fallbacks())["alpha"]["polled"] is True
    await store.clear_fallback(["alpha"])
    assert await store.fallbacks() == {}


async def test_channel_pace_is_a_moving_average_of_gaps(store: AccountStore) -> None:
    assert await store.record_posts("alpha", [1000.0]) == (1000.0, None, 0)
    assert await store.record_posts("alpha", [1600.0]) == (1600.0, 600.0, 1)
    assert await store.record_posts("alpha", [1500.0]) == (1600.0, 600.0, 1)  # older: ignored
    last, interval, samples = await store.record_posts("alpha", [1700.0])
    assert (last, samples) == (1700.0, 2)
    assert interval == pytest.approx(next_interval(600.0, 100.0)) == pytest.approx(550.0)
    # A batch counts each of its gaps, in date order.
    last, interval, samples = await store.record_posts("alpha", [1900.0, 1800.0])
    assert (last, samples) == (1900.0, 4)
    assert interval == pytest.approx(next_interval(next_interval(550.0, 100.0), 100.0))


def test_list_and_remove_for_the_cli(redis_client: redis.Redis) -> None:
    register_account(redis_client, "a1", 42, "@first")
    register_account(redis_client, "a2", 43, "@second")
    assert [(r.name, r.display, r.state) for r in list_accounts(redis_client)] == [
        ("a1", "@first", "active"), ("a2", "@second", "active")
    ]  # fmt: skip
    assert remove_account(redis_client, "a1") == 0
    assert [r.name for r in list_accounts(redis_client)] == ["a2"]
