"""Benchmark the pipeline: posts/s through the queue and the post stage with real workers.

Usage: ``python scripts/bench_pipeline.py [--posts 5000] [--workers 2] [--batch 100]
[--rules 1000] [--redis-url URL]``

Posts are the bundled sample channel's posts repeated under new message ids (so none is a
duplicate), ~1 KB each on average. They are enqueued in batches exactly as a listener does (the
Enqueuer), then ``--workers`` non-forking worker processes (`tgwatch worker --burst`) run the
whole post stage on them: enrichment (language, topics, watched entities; NER off), matching
against ``--rules`` generated subscriptions (no delivery targets), alert decisions and storage.
Without ``--redis-url`` an embedded Redis in a temporary directory is used, so the benchmark
never touches a database of yours. The same run with ``--batch 1`` shows what one job per post
costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from service import constants
from service.core.formats.detect import parse_file
from service.core.post import Post
from service.core.rules import RuleSet, Subscription
from service.logging import configure_logging
from service.queue import Enqueuer
from service.redis import start_embedded
from service.rules_watch import save_ruleset

SAMPLE = Path(__file__).resolve().parent.parent / "service" / "data" / "sample"
WORDS = ["sanctions", "санкции", "Лавров", "ceasefire", "nuclear", "UNGA79", "Zakharova",
         "перемирие", "oil", "gas", "summit", "Ukraine", "NATO", "China", "BRICS"]  # fmt: skip


def make_posts(count: int) -> list[Post]:
    base = parse_file(SAMPLE / "mfa_russia_sample.json").posts
    posts = []
    for number in range(count):
        post = base[number % len(base)]
        posts.append(post.with_changes(message_id=100_000 + number, text=f"{post.text} #{number}"))
    return posts


def make_rules(count: int, seed: int = 7) -> RuleSet:
    """``count`` subscriptions: 2% on words these posts carry (so a post alerts a handful of
    subscribers, as a real stream does), the rest on names that never occur in them."""
    rng = random.Random(seed)
    subs = []
    for number in range(count):
        a, b = rng.sample(WORDS, 2)
        if rng.random() < 0.02:
            query = rng.choice([a, f"{a} {b}", f"{a} OR {b}", f"{a} -{b}", f'"{a} {b}"'])
        else:
            query = rng.choice([f"name{number}", f"name{number} OR {a}s{number}"])
        subs.append(Subscription(id=f"s{number}", query=query))
    return RuleSet((), tuple(subs))


async def enqueue(client: redis.Redis, posts: list[Post], batch: int) -> float:
    enqueuer = Enqueuer(client, batch_size=batch, batch_wait=0.5)
    started = time.perf_counter()
    for start in range(0, len(posts), 500):
        await enqueuer.put_many(posts[start : start + 500])
    await enqueuer.close()
    return time.perf_counter() - started


def run_workers(url: str, workers: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGWATCH_")}
    env.update({"TGWATCH_REDIS_URL": url, "TGWATCH_LOG_LEVEL": "warning"})
    command = [sys.executable, "-m", "service.cli", "worker", "--burst", "--queue",
               constants.POSTS_QUEUE]  # fmt: skip
    started = time.perf_counter()
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=constants.BATCH_MAX_POSTS)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    configure_logging("console", "warning")

    with tempfile.TemporaryDirectory() as tmp:
        handle = None
        if args.redis_url:
            url = args.redis_url
            client = redis.Redis.from_url(url)
        else:
            handle = start_embedded(Path(tmp))
            url, client = handle.url, handle.client
        client.flushdb()
        save_ruleset(client, make_rules(args.rules))
        posts = make_posts(args.posts)
        size = sum(len(p.text.encode()) for p in posts) / len(posts)
        # Worker start-up (imports, analyzers, index compile) measured apart from throughput.
        warm = run_workers(url, args.workers)
        enqueue_s = asyncio.run(enqueue(client, posts, args.batch))
        work_s = run_workers(url, args.workers)
        stats_key = f"{constants.KEY_PREFIX}channel:mfa_russia:stats"
        stored = int(client.hget(stats_key, "posts") or 0)
        print(f"{args.posts} posts (mean {size:.0f} bytes), {args.rules} rules, batch "
              f"{args.batch}, {args.workers} worker process(es)")  # fmt: skip
        print(f"  enqueue: {args.posts / enqueue_s:,.0f} posts/s ({enqueue_s:.2f} s)")
        print(f"  workers: {args.posts / (work_s - warm):,.0f} posts/s after start-up "
              f"({work_s:.2f} s total, of which ~{warm:.2f} s start-up)")  # fmt: skip
        alerts = int(client.xlen(constants.ALERTS_STREAM))
        print(f"  stored posts: {stored}, alerts: {alerts} ({alerts / args.posts:.1f} per post)")
        if handle is not None:
            handle.close()


if __name__ == "__main__":
    main()
