"""The account pool against a real Redis, driven by a fake of the source's own client interface:
sharding, lease loss and takeover, flood waits, catch-up, bans and the preview fallback."""

from __future__ import annotations

import time

from service.store.accounts import channel_sources, list_accounts
from service.store.leases import FALLBACK_ACCOUNT, lease_key
from tests.sources.mtproto.conftest import LEASE, Rig, wait_for

CHANNELS = [f"chan{n:02d}" for n in range(10)]


def watch_all(rig: Rig, names: list[str], posts: int = 3) -> None:
    for name in names:
        rig.world.add_channel(name, posts=posts)
    rig.watch.extend(names)


async def split_evenly(rig: Rig, accounts: tuple[str, ...]) -> dict[str, str | None]:
    """Wait until every watched channel is held by one of ``accounts``, in equal shares."""

    async def even() -> bool:
        holders = await rig.holders()
        counts = [list(holders.values()).count(a) for a in accounts]
        return set(holders.values()) <= set(accounts) and max(counts) - min(counts) <= 1

    await wait_for(even, what="channels split evenly")
    return await rig.holders()


async def test_two_pools_split_the_channels_none_read_twice_none_left_out(rig: Rig) -> None:
    watch_all(rig, CHANNELS)
    for name in CHANNELS:
        await rig.set_watermark(name, 0)  # read their history from the start
    rig.start(["a1"])
    rig.start(["a2"])
    holders = await split_evenly(rig, ("a1", "a2"))
    assert sorted(holders) == CHANNELS
    await wait_for(lambda: len(rig.sink.posts) == 30, what="every existing post read")
    # Each post once; then live posts, each from the one account that holds its channel.
    for name in CHANNELS:
        rig.world.publish(rig.world.channel(name), f"live in {name}")
    await wait_for(lambda: len(rig.sink.posts) == 40, what="live posts")
    assert set(rig.sink.put_counts().values()) == {1}
    by_channel = {post.channel_key: post for post in rig.sink.posts if post.text.startswith("live")}
    assert sorted(by_channel) == CHANNELS


async def test_a_pool_started_later_still_gets_its_share(rig: Rig) -> None:
    watch_all(rig, CHANNELS, posts=1)
    first = rig.start(["a1"])
    await wait_for(lambda: len(first.tracked("a1")) == 10, what="a1 takes all")
    rig.start(["a2"])
    await split_evenly(rig, ("a1", "a2"))


async def test_a_dead_pool_loses_its_channels_to_the_other_within_a_lease(rig: Rig) -> None:
    watch_all(rig, CHANNELS, posts=1)
    one = rig.start(["a1"])
    rig.start(["a2"])
    holders = await split_evenly(rig, ("a1", "a2"))
    await wait_for(lambda: one.synced("a1"), what="a1 synced")
    orphans = sorted(name for name, holder in holders.items() if holder == "a1")
    await rig.crash(one)
    died = time.monotonic()
    for name in orphans:  # posted while nobody reads them: caught up by the new reader
        rig.world.publish(rig.world.channel(name), f"while {name} was orphaned", push=False)

    async def taken_over() -> bool:
        return set((await rig.holders()).values()) == {"a2"}

    await wait_for(taken_over, what="a2 holds every channel")
    took = time.monotonic() - died
    # A lease, plus a round of the survivor, plus a margin for a loaded machine.
    assert took < LEASE + LEASE / 3 + 3.0, took
    await wait_for(lambda: len(rig.sink.posts) == len(orphans), what="the gap caught up")
    assert sorted(p.channel_key for p in rig.sink.posts) == orphans
    assert set(rig.sink.put_counts().values()) == {1}


async def test_a_lease_taken_by_another_holder_is_dropped_at_once(rig: Rig) -> None:
    watch_all(rig, ["alpha", "bravo"], posts=0)
    running = rig.start(["a1"])
    await wait_for(lambda: running.synced("a1", "alpha", "bravo"), what="a1 reads both")
    rig.sync.set(lease_key("alpha"), "intruder someone-else", px=60_000)
    await wait_for(lambda: "alpha" not in running.tracked("a1"), what="alpha dropped")
    rig.world.publish(rig.world.channel("alpha"), "not ours any more")
    rig.world.publish(rig.world.channel("bravo"), "still ours")
    await wait_for(lambda: len(rig.sink.puts) == 1, what="bravo's post")
    assert [p.channel_key for p in rig.sink.puts] == ["bravo"]


async def test_flood_wait_pauses_that_account_only_and_other_work_goes_on(rig: Rig) -> None:
    names = [f"flood{n}" for n in range(6)]
    watch_all(rig, names, posts=0)
    rig.world.flood("a1", "resolve", 2.0)
    running = rig.start(["a1", "a2"])

    async def all_joined() -> bool:
        holders = await rig.holders()
        runners = running.pool.runners
        return all(holders[n] for n in names) and all(
            t.synced for r in runners.values() for t in r.tracked.values()
        ) and sum(len(r.tracked) for r in runners.values()) == 6  # fmt: skip

    await wait_for(all_joined, what="every channel joined")
    resolves = rig.world.calls_of("a1", "resolve")
    flooded_at, next_at = resolves[0].at, resolves[1].at
    assert next_at - flooded_at >= 2.0  # it slept the seconds it was given
    meanwhile = [c for c in rig.world.calls if flooded_at < c.at < next_at and c.account == "a2"]
    assert {c.operation for c in meanwhile} >= {"resolve", "join", "history"}
    assert running.sample("tgwatch_mtproto_flood_waits_total", account="a1",
                          operation="resolve") == 1.0  # fmt: skip
    record = await rig.store.account("a1")
    assert record.flood_seconds == 2.0 and record.flood_operation == "resolve"


async def test_a_long_flood_wait_hands_waiting_channels_to_other_accounts(rig: Rig) -> None:
    names = [f"handoff{n}" for n in range(4)]
    watch_all(rig, names, posts=0)
    rig.world.flood("a1", "resolve", 300.0)
    rig.start(["a1"], flood_handoff_seconds=10.0)
    await wait_for(lambda: rig.world.calls_of("a1", "resolve"), what="a1 flooded")
    rig.start(["a2"], flood_handoff_seconds=10.0)

    async def all_with_a2() -> bool:
        return set((await rig.holders()).values()) == {"a2"}

    await wait_for(all_with_a2, what="a2 reads everything while a1 waits")
    assert len(rig.world.calls_of("a1", "resolve")) == 1


async def test_catch_up_reads_bounded_pages_newest_first_then_only_the_gap(rig: Rig) -> None:
    channel = rig.world.add_channel("gappy", posts=30)
    rig.watch.append("gappy")
    await rig.set_watermark("gappy", 0)
    first = rig.start(["a1"])  # 3 pages of 5: the newest 15 posts, the older gap given up
    await wait_for(lambda: len(rig.sink.posts) == 15, what="the newest 15")
    assert [p.message_id for p in rig.sink.posts] == list(range(16, 31))
    assert await rig.channels.watermark("gappy") == 30
    await rig.stop(first)
    for number in range(7):
        rig.world.publish(channel, f"while stopped {number}", push=False)
    calls_before = len(rig.world.calls_of("a1", "history"))
    rig.start(["a1"])
    await wait_for(lambda: len(rig.sink.posts) == 22, what="the 7 missed posts")
    assert [p.message_id for p in rig.sink.posts[15:]] == list(range(31, 38))
    assert len(rig.world.calls_of("a1", "history")) - calls_before == 2  # 5 + 2: done
    assert set(rig.sink.put_counts().values()) == {1}
    resolves = [c for c in rig.world.calls_of("a1", "resolve") if c.channel == "gappy"]
    assert len(resolves) == 1  # the restart used the cached id and access hash


async def test_live_posts_during_catch_up_never_skip_the_gap(rig: Rig) -> None:
    channel = rig.world.add_channel("racey", posts=10)
    rig.watch.append("racey")
    await rig.set_watermark("racey", 0)
    rig.world.history_gate.clear()  # history answers hang until released
    running = rig.start(["a1"])
    await wait_for(lambda: rig.world.calls_of("a1", "history"), what="catch-up started")
    live = rig.world.publish(channel, "live while catching up")
    await wait_for(lambda: [p.message_id for p in rig.sink.posts] == [live.message_id])
    assert await rig.channels.watermark("racey") == 0  # the gap behind it is still unread
    rig.world.history_gate.set()
    await wait_for(lambda: len(rig.sink.posts) == 11, what="the gap read")
    assert await rig.channels.watermark("racey") == 11
    tracked = running.pool.runners["a1"].tracked["racey"]
    assert tracked.synced
    later = rig.world.publish(channel, "live once synced")
    await wait_for(lambda: len(rig.sink.posts) == 12)
    assert await rig.channels.watermark("racey") == later.message_id


async def test_a_reconnect_catches_up_what_came_while_away(rig: Rig) -> None:
    channel = rig.world.add_channel("flaky", posts=0)
    rig.watch.append("flaky")
    running = rig.start(["a1"])
    await wait_for(lambda: running.synced("a1", "flaky"))
    rig.world.cut("a1")
    await wait_for(lambda: not rig.world.clients["a1"].online, what="cut")
    missed = rig.world.publish(channel, "pushed while offline")  # nobody online to push to
    await wait_for(lambda: rig.world.connects["a1"] == 2, what="reconnected")
    await wait_for(lambda: [p.message_id for p in rig.sink.posts] == [missed.message_id])


async def test_a_banned_account_is_marked_its_channels_move_and_the_metric_rises(
    rig: Rig,
) -> None:
    watch_all(rig, CHANNELS, posts=0)
    one = rig.start(["a1"])
    two = rig.start(["a2"])
    holders = await split_evenly(rig, ("a1", "a2"))
    await wait_for(lambda: one.synced("a1") and two.synced("a2"), what="both read their share")
    banned_channels = sorted(n for n, h in holders.items() if h == "a1")
    rig.world.ban("a1", "banned")

    async def moved() -> bool:
        return set((await rig.holders()).values()) == {"a2"}

    await wait_for(moved, what="a1's channels with a2")
    record = next(r for r in list_accounts(rig.sync) if r.name == "a1")
    assert (record.state, record.connected, record.running) == ("banned", False, False)
    await wait_for(lambda: one.sample("tgwatch_mtproto_account_unusable", account="a1",
                                      reason="banned") == 1.0)  # fmt: skip
    assert one.sample("tgwatch_mtproto_account_connected", account="a1") in (None, 0.0)
    for name in banned_channels:
        rig.world.publish(rig.world.channel(name), f"after the ban in {name}")
    await wait_for(lambda: len(rig.sink.posts) == len(banned_channels))
    connects = rig.world.connects["a1"]
    await wait_for(lambda: "a1" not in one.pool.runners, what="a1 not run any more")
    assert rig.world.connects["a1"] == connects  # a banned account is not tried again


async def test_a_channel_no_account_can_read_falls_back_to_the_preview(rig: Rig) -> None:
    closed = rig.world.add_channel("closedchan")
    closed.refuse = {"a1": "private", "a2": "private"}
    rig.world.add_channel("openchan")
    rig.world.add_channel(None, private=True, invite="AbCdEfGhIjK")  # refused by both too
    rig.world.channels["+AbCdEfGhIjK"].refuse = {"a1": "invite_invalid", "a2": "invite_invalid"}
    rig.watch.extend(["closedchan", "openchan", "https://t.me/+AbCdEfGhIjK"])
    running = rig.start(["a1", "a2"])

    async def fell_back() -> bool:
        return (await rig.holders()).get("closedchan") == FALLBACK_ACCOUNT

    await wait_for(fell_back, what="closedchan polled from its preview")
    assert await running.pool.fallback_channels() == ["closedchan"]
    sources = channel_sources(rig.sync)
    assert sources["closedchan"] == {"fallback": "refused: private", "polled": True,
                                     "account": FALLBACK_ACCOUNT}  # fmt: skip
    await wait_for(lambda: "+AbCdEfGhIjK" in channel_sources(rig.sync))
    invite = channel_sources(rig.sync)["+AbCdEfGhIjK"]
    assert invite == {"fallback": "refused: invite_invalid", "polled": False}  # not public
    assert channel_sources(rig.sync)["openchan"]["account"] in ("a1", "a2")
    assert running.sample("tgwatch_channel_source", channel="closedchan", source="preview") == 1


async def test_a_full_pool_falls_back_and_a_new_account_takes_the_channel_back(rig: Rig) -> None:
    watch_all(rig, ["xchan1", "xchan2", "xchan3"], posts=0)
    first = rig.start(["a1"], channels_per_account=2)

    async def one_in_fallback() -> bool:
        return list((await rig.holders()).values()).count(FALLBACK_ACCOUNT) == 1

    await wait_for(one_in_fallback, what="the third channel polled from its preview")
    (spilled,) = await first.pool.fallback_channels()
    assert channel_sources(rig.sync)[spilled]["fallback"] == "every account is full"
    rig.start(["a2"], channels_per_account=2)

    async def all_on_accounts() -> bool:
        return set((await rig.holders()).values()) <= {"a1", "a2"}

    await wait_for(all_on_accounts, what="a2 takes the spilled channel")
    await wait_for(lambda: not first.pool.fallback, what="the fallback poller lets go")
    await wait_for(lambda: "fallback" not in channel_sources(rig.sync).get(spilled, {}))


async def test_edits_albums_service_messages_and_deletions(rig: Rig) -> None:
    channel = rig.world.add_channel("mixed", posts=0)
    rig.watch.append("mixed")
    running = rig.start(["a1"])
    await wait_for(lambda: running.synced("a1", "mixed"))
    first = rig.world.publish(channel, "first version")
    for number, text in enumerate(["", "Album caption", ""]):
        rig.world.publish(channel, text, album_id="900", media="photo", views=10 + number)
    await wait_for(lambda: len(rig.sink.posts) == 2, what="a post and one album post")
    album = rig.sink.posts[1]
    assert (album.message_id, album.album_items, album.text) == (2, (2, 3, 4), "Album caption")
    rig.world.edit(channel, first.message_id, "second version")
    rig.world.edit(channel, 3, "Album caption, corrected")
    await wait_for(lambda: len(rig.sink.posts) == 4, what="two edits")
    # The album is read again around its edited item (a request), so the two may come in
    # either order.
    edited_post = next(p for p in rig.sink.posts[2:] if p.message_id == first.message_id)
    edited_album = next(p for p in rig.sink.posts[2:] if p.message_id == 2)
    assert (edited_post.text, edited_post.edited) == ("second version", True)
    assert (edited_album.message_id, edited_album.album_items, edited_album.edited) == (
        2,
        (2, 3, 4),
        True,
    )
    assert edited_album.text == "Album caption, corrected"
    service_id = rig.world.service_message(channel)

    async def watermark_at_service() -> bool:
        return await rig.channels.watermark("mixed") == service_id

    await wait_for(watermark_at_service, what="a service message moves the watermark")
    for post in rig.sink.posts:  # what the workers would have stored
        rig.posts.store(post)
    puts = len(rig.sink.puts)
    rig.world.delete(channel, first.message_id)
    key = f"mixed/{first.message_id}"

    def deleted() -> bool:
        latest = rig.posts.latest(key)
        return latest is not None and latest.post.deleted

    await wait_for(deleted, what="a deleted version stored")
    latest = rig.posts.latest(key)
    assert latest is not None and latest.post.deleted and latest.post.text == "second version"
    assert len(rig.posts.versions(key)) == 3
    assert len(rig.sink.puts) == puts  # a deletion never travels to the queue: no alert
    assert running.sample("tgwatch_mtproto_deleted_total") == 1.0


async def test_channels_leaving_the_watch_list_are_given_back(rig: Rig) -> None:
    watch_all(rig, ["keepme", "dropme"], posts=0)
    running = rig.start(["a1"])
    await wait_for(lambda: len(running.tracked("a1")) == 2)
    rig.watch.remove("dropme")
    await wait_for(lambda: running.tracked("a1") == {"keepme"})
    assert (await rig.store.holders(["dropme"]))["dropme"] is None


async def test_a_stopped_pool_gives_its_leases_back_at_once(rig: Rig) -> None:
    watch_all(rig, ["one1", "two2"], posts=0)
    running = rig.start(["a1"])
    await wait_for(lambda: len(running.tracked("a1")) == 2)
    await rig.stop(running)
    assert set((await rig.holders()).values()) == {None}
    assert not (await rig.store.running(["a1"]))


async def test_an_account_whose_session_cannot_load_is_reported_not_fatal(rig: Rig) -> None:
    watch_all(rig, ["solo1"], posts=0)

    def broken(name: str) -> object:
        raise ValueError(f"account {name}: session does not decrypt")

    running = rig.pool(["a1"])
    running.pool.connect = broken  # type: ignore[assignment]
    await running.pool.tick()
    record = await rig.store.account("a1")
    assert record.last_error == "account a1: session does not decrypt"
    assert not running.pool.runners and not await rig.store.running(["a1"])
