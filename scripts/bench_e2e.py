"""End-to-end load benchmark: real `tgwatch worker` processes on a real Redis, a steady offered
rate and a flood, at 1k and 100k subscriptions.

Usage: ``python scripts/bench_e2e.py [--subscriptions 1000,100000] [--workers 2] [--rate 200]
[--seconds 20] [--flood 6000]``

For each rule-set size it starts a Redis of its own (``redis-server`` on a free loopback port,
removed afterwards), stores the subscriptions (see ``bench_common.sample_rules``; one more,
``channel:bench``, matches every post so each post's alerts are timed), starts ``--workers``
worker processes and measures, in the same run:

- start-up: spawn to every worker registered with RQ, which a worker does once its context is
  built and its rules compiled (ready);
- memory per worker: resident set when ready (idle) and its peak at the end;
- steady: posts handed to the queue the way a listener does (the Enqueuer: claim, adaptive
  batches) at ``--rate`` posts/s for ``--seconds``; latency is post handed to the queue -> its
  alerts recorded (the alert's stream entry id is the Redis server's clock, the same machine's);
- flood: ``--flood`` posts handed over at once; throughput from the first post handed over to
  the last one stored, with the same latency;
- Redis commands per post over each phase (INFO commandstats, a script's commands included),
  listener side and workers together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import redis
from bench_common import (
    PROBE_ID,
    commands,
    cpu_seconds,
    machine,
    percentile,
    private_redis,
    redis_cpu_seconds,
    rss_mb,
    sample_posts,
    sample_rules,
    start_workers,
    stop_workers,
    stored_posts,
    wait_ready,
)

from service import constants
from service.logging import configure_logging
from service.queue import Enqueuer
from service.store.rules import RuleStore

# Posts handed over together in a flood, as a page of a channel or a chunk of a file comes.
FLOOD_PAGE = 100


@dataclass
class Phase:
    name: str
    posts: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    commands: int = 0
    worker_cpu: float = 0.0  # seconds, all workers
    redis_cpu: float = 0.0

    def line(self) -> str:
        ms = [value * 1000 for value in self.latencies]
        return (
            f"  {self.name:<7} {self.posts:>6} posts  {self.posts / self.seconds:>7,.0f} posts/s  "
            f"latency ms p50 {percentile(ms, 0.5):>6.1f}  p95 {percentile(ms, 0.95):>6.1f}  "
            f"p99 {percentile(ms, 0.99):>7.1f}  max {max(ms, default=float('nan')):>7.1f}  "
            f"Redis commands/post {self.commands / self.posts:>5.1f}\n"
            f"          CPU per post: workers {self.worker_cpu / self.posts * 1000:.2f} ms, "
            f"Redis {self.redis_cpu / self.posts * 1000:.2f} ms"
        )


async def offer(client: redis.Redis, posts: list, rate: float | None) -> dict[str, float]:  # type: ignore[type-arg]
    """Hand ``posts`` to the queue as a listener does, ``rate`` a second (None: all at once);
    returns when each was handed over, by post key."""
    enqueuer = Enqueuer(client)
    handed: dict[str, float] = {}
    started = time.monotonic()
    if rate is None:  # a flood comes in pages (a preview page, a file): put_many
        for start in range(0, len(posts), FLOOD_PAGE):
            page = posts[start : start + FLOOD_PAGE]
            now = time.time()
            handed.update((post.key, now) for post in page)
            await enqueuer.put_many(page)
    for number, post in enumerate(posts if rate is not None else ()):
        delay = started + number / rate - time.monotonic()  # type: ignore[operator]
        if delay > 0:
            await asyncio.sleep(delay)
        handed[post.key] = time.time()
        await enqueuer.put(post)
    await enqueuer.close()
    return handed


def recorded(client: redis.Redis, after: str) -> dict[str, float]:
    """When each post's probe alert was recorded (its stream entry's server time), by post key,
    for entries after the stream id ``after``."""
    found: dict[str, float] = {}
    cursor = after
    while True:
        entries = client.xrange(constants.ALERTS_STREAM, min=f"({cursor}", count=5000)
        if not entries:
            return found
        for entry_id, fields in entries:
            cursor = entry_id.decode()
            alert = json.loads(fields[b"alert"])
            if alert["subscription_id"] == PROBE_ID:
                post = alert["post"]
                found[f"{post['channel'].lower()}/{post['message_id']}"] = (
                    int(cursor.split("-")[0]) / 1000
                )


def run_phase(
    client: redis.Redis,
    name: str,
    posts: list,  # type: ignore[type-arg]
    rate: float | None,
    pids: list[int],
) -> Phase:
    phase = Phase(name, len(posts))
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    redis_before = redis_cpu_seconds(client)
    before = stored_posts(client)
    last = client.xrevrange(constants.ALERTS_STREAM, count=1)
    after = last[0][0].decode() if last else "0-0"
    commands_before = commands(client)
    started = time.time()
    handed = asyncio.run(offer(client, posts, rate))
    deadline = time.monotonic() + 600
    while stored_posts(client) < before + len(posts):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: posts not all stored")
        time.sleep(0.01)
    phase.seconds = time.time() - started
    phase.commands = commands(client) - commands_before
    phase.worker_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    phase.redis_cpu = redis_cpu_seconds(client) - redis_before
    times = recorded(client, after)
    phase.latencies = [times[key] - at for key, at in handed.items() if key in times]
    if len(phase.latencies) != len(posts):
        print(f"  ({name}: {len(posts) - len(phase.latencies)} posts without a probe alert)")
    return phase


def bench(size: int, workers: int, rate: float, seconds: float, flood: int) -> None:
    with private_redis() as url:
        client = redis.Redis.from_url(url)
        started = time.monotonic()
        RuleStore(client).replace(sample_rules(size, probe=True))
        print(f"{size:,} subscriptions (+1 probe) stored in {time.monotonic() - started:.1f} s; "
              f"{workers} workers; {machine()}")  # fmt: skip
        procs = start_workers(url, workers)
        try:
            ready = wait_ready(client, workers)
            idle = [rss_mb(proc.pid) for proc in procs]
            print(f"  start-up: {ready:.2f} s to {workers} workers ready (rules compiled); "
                  f"idle RSS per worker {', '.join(f'{mb:.0f}' for mb in idle)} MB")  # fmt: skip
            pids = [proc.pid for proc in procs]
            # The sample's words into the caches; where rules compile on the first job (older
            # versions), this is where a post waits for the compile.
            print(run_phase(client, "warm-up", sample_posts(200, start=1), None, pids).line())
            steady = sample_posts(int(rate * seconds), start=100_000)
            print(run_phase(client, "steady", steady, rate, pids).line())
            burst = sample_posts(flood, start=1_000_000)
            print(run_phase(client, "flood", burst, None, pids).line())
            peak = [rss_mb(proc.pid, "VmHWM") for proc in procs]
            print(f"  peak RSS per worker {', '.join(f'{mb:.0f}' for mb in peak)} MB")
        finally:
            stop_workers(procs)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", default="1000,100000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0, help="steady posts/s offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the steady rate")
    parser.add_argument("--flood", type=int, default=6000, help="posts handed over at once")
    args = parser.parse_args()
    configure_logging("console", "warning")
    for size in (int(part) for part in args.subscriptions.split(",")):
        bench(size, args.workers, args.rate, args.seconds, args.flood)


if __name__ == "__main__":
    main()
