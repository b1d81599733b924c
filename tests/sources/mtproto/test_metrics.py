"""The MTProto series the dashboard and the alert tests use are exported by a real pool after real
events (a ban, a flood wait, posts), with the labels and values the promtool tests feed.

`tests/ops/test_running_service.py` checks every other series against a running listener and
worker; no process there can run an account, so the MTProto ones are checked here.
"""

from __future__ import annotations

from prometheus_client import generate_latest

from tests.ops.names import FREE_LABELS, promtool_input_series, samples
from tests.sources.mtproto.conftest import Rig, wait_for

# The series of the MTProto source (checked here rather than by the running-service test).
MTPROTO_SERIES = (
    "tgwatch_mtproto_",
    "tgwatch_channel_last_post_timestamp_seconds",
    "tgwatch_channel_usual_interval_seconds",
    "tgwatch_channel_source",
)


def is_mtproto_series(metric: str) -> bool:
    return metric.startswith(MTPROTO_SERIES)


async def test_the_series_the_alert_tests_feed_come_from_real_events(rig: Rig) -> None:
    for name in ("busy", "slow", "newbie"):
        rig.world.add_channel(name)
    rig.watch.extend(["busy", "slow", "newbie"])
    rig.world.flood("spare", "resolve", 7200.0)
    first = rig.start(["spare"])  # alone, it takes the channels and meets the flood wait
    await wait_for(lambda: first.sample("tgwatch_mtproto_account_flood_wait_seconds",
                                        account="spare") == 7200.0)  # fmt: skip
    second = rig.start(["main", "flaky"])  # they take the channels spare cannot join

    def read_by_second() -> bool:
        reading = second.tracked("main") | second.tracked("flaky")
        return (
            reading == {"busy", "slow", "newbie"}
            and second.synced("main")
            and second.synced("flaky")
        )

    await wait_for(read_by_second, what="main and flaky read the three channels")
    for name, count in (("busy", 6), ("slow", 6), ("newbie", 1)):
        for number in range(count):
            rig.world.publish(rig.world.channel(name), f"{name} {number}")
    await wait_for(lambda: len(rig.sink.posts) == 13, what="every post")
    rig.world.ban("main", "banned")
    await wait_for(lambda: second.sample("tgwatch_mtproto_account_unusable", account="main",
                                         reason="banned") == 1.0)  # fmt: skip

    exposition = "\n".join(
        generate_latest(running.metrics.registry).decode() for running in (first, second)
    )
    found = samples(exposition)
    checked = 0
    for metric, labels in promtool_input_series():
        if not is_mtproto_series(metric):
            continue
        exported = [lbl for name, lbl, _value in found if name == metric]
        assert exported, f"alerts_test.yml feeds {metric}, which nothing exports"
        assert set(labels) == {k for lbl in exported for k in lbl} - FREE_LABELS, metric
        for key, value in labels.items():
            assert value in {lbl.get(key) for lbl in exported}, (metric, key, value)
        checked += 1
    assert checked >= 5
