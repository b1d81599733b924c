"""Benchmark the post stage: CPU per post by step in one process, then real workers' throughput.

Usage: ``python scripts/bench_pipeline.py [--posts 3000] [--rules 1000] [--workers 2]
[--batches 100,1]``

Posts are the bundled sample channel's (~1.3 KB each) under new ids (see
``bench_common.sample_posts``); ``--rules`` subscriptions, 2% on words these posts carry (~1.7
alerts a post, no delivery targets). Everything runs on a Redis of the benchmark's own.

1. The post stage in this process (``workers.pipeline.process_posts`` on batches of 100, as a
   worker runs it: enrichment with language, topics and watched entities, NER off; matching;
   alert decisions; storage), after a warm-up batch: CPU per post (this process; Redis's own
   apart), the wall time of each step per post (the stage's histogram), Redis round trips per
   batch and commands per post (a script's own commands included).
2. ``--workers`` real `tgwatch worker` processes, started and ready first, then the posts handed
   over in pages as a listener does, with each ``--batches`` size: posts/s from the first post
   handed over to the last one stored, and the workers' CPU per post.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis
from bench_common import (
    commands,
    cpu_seconds,
    machine,
    private_redis,
    redis_cpu_seconds,
    sample_posts,
    sample_rules,
    start_workers,
    stop_workers,
    stored_posts,
    wait_ready,
)
from prometheus_client import CollectorRegistry

from service import constants
from service.config import load_settings
from service.delivery_queue import deliveries_queue
from service.logging import configure_logging
from service.metrics import Metrics
from service.queue import Enqueuer
from service.store.rules import RuleStore
from workers import pipeline
from workers.context import PostStage

STEPS = ("enrich", "match", "alert", "store")
BATCH = 100


class CountingConnection(redis.Connection):
    """Counts round trips: one send per command or pipeline."""

    sends = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


def in_process(url: str, count: int, rules: int) -> None:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    RuleStore(client).replace(sample_rules(rules))
    metrics = Metrics(CollectorRegistry())
    stage = PostStage.build(load_settings(redis_url=url, _env_file=None), client, metrics,
                            deliveries_queue(client))  # fmt: skip
    stage.rules.current()  # compiled, as a worker does at start
    pipeline.process_posts(stage, sample_posts(BATCH, start=1))  # warm-up
    posts = sample_posts(count)
    registry = metrics.registry
    before = {step: registry.get_sample_value("tgwatch_stage_duration_seconds_sum",
                                              {"step": step}) or 0.0 for step in STEPS}  # fmt: skip
    sends, ran, redis_cpu = CountingConnection.sends, commands(client), redis_cpu_seconds(client)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, count, BATCH):
        pipeline.process_posts(stage, posts[start : start + BATCH])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    batches = -(-count // BATCH)
    trips = (CountingConnection.sends - sends) / batches
    ran, redis_cpu = commands(client) - ran, redis_cpu_seconds(client) - redis_cpu
    steps = {step: ((registry.get_sample_value("tgwatch_stage_duration_seconds_sum",
                                               {"step": step}) or 0.0) - before[step]) / count
             for step in STEPS}  # fmt: skip
    print(f"in process: {count} posts in batches of {BATCH}, {rules} subscriptions")
    print(
        f"  CPU per post {cpu / count * 1000:.3f} ms (Redis's own: {redis_cpu / count * 1000:.3f}"
        f" ms), wall {wall / count * 1000:.3f} ms: {count / cpu:,.0f} posts/s per core"
    )
    print(
        "  wall ms per post by step: "
        + ", ".join(f"{step} {seconds * 1000:.3f}" for step, seconds in steps.items())
    )
    print(f"  Redis round trips per batch {trips:.1f}, commands per post {ran / count:.1f}")
    client.close()


async def hand_over(client: redis.Redis, posts: list, batch: int) -> None:  # type: ignore[type-arg]
    enqueuer = Enqueuer(client, batch_size=batch)
    for start in range(0, len(posts), 500):
        await enqueuer.put_many(posts[start : start + 500])
    await enqueuer.close()


def with_workers(url: str, count: int, rules: int, workers: int, batches: list[int]) -> None:
    client = redis.Redis.from_url(url)
    procs = start_workers(url, workers)
    try:
        ready = wait_ready(client, workers)
        print(f"{workers} worker process(es): ready {ready:.2f} s after start")
        offset = 1_000_000
        for batch in batches:
            posts = sample_posts(count, start=offset)
            offset += count
            before, cpu = stored_posts(client), sum(cpu_seconds(p.pid) for p in procs)
            started = time.perf_counter()
            asyncio.run(hand_over(client, posts, batch))
            handed = time.perf_counter() - started
            while stored_posts(client) < before + count:
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu
            print(f"  batch {batch:>3}: {count / seconds:>6,.0f} posts/s ({count} posts handed "
                  f"over in {handed:.2f} s, all stored after {seconds:.2f} s), workers' CPU "
                  f"{cpu / count * 1000:.2f} ms a post")  # fmt: skip
        alerts = int(client.xlen(constants.ALERTS_STREAM))
        print(f"  alerts: {alerts} ({alerts / (count * len(batches)):.1f} per post)")
    finally:
        stop_workers(procs)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", default="100,1")
    args = parser.parse_args()
    configure_logging("console", "warning")
    print(machine())
    with private_redis() as url:
        in_process(url, args.posts, args.rules)
    with private_redis() as url:
        RuleStore(redis.Redis.from_url(url)).replace(sample_rules(args.rules))
        batches = [int(part) for part in args.batches.split(",")]
        with_workers(url, args.posts, args.rules, args.workers, batches)
    print(machine())


if __name__ == "__main__":
    main()
