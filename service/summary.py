"""The readable summary printed after the quick-start demo run."""

from __future__ import annotations

from collections import Counter

import redis

from service.queue import EnqueueStats
from service.status import collect_status
from service.store.posts import PostStore


def demo_summary(
    connection: redis.Redis, stats: EnqueueStats, seconds: float, next_hint: str = "tgwatch"
) -> str:
    store = PostStore(connection)
    status = collect_status(connection)
    lines = [
        "",
        f"tgwatch demo: the bundled sample channel went through the pipeline in {seconds:.1f} s",
        f"  listener: {stats.seen} post versions seen, {stats.enqueued} enqueued in {stats.jobs} "
        f"job(s), {stats.duplicates} already seen, {stats.rejected} set aside",
    ]
    langs: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    for channel in store.channels():
        info = store.stats(channel)
        lines.append(f"  stored: {channel}: {info.get('posts', 0)} posts, "
                     f"{info.get('versions', 0)} versions")  # fmt: skip
        for version in store.recent(channel, 1000):
            langs[version.enrichment.lang or "?"] += 1
            topics.update(topic.id for topic in version.enrichment.topics)
    if sum(langs.values()):
        lines.append("  languages: " + ", ".join(f"{k} {v}" for k, v in langs.most_common()))
    if topics:
        lines.append("  topics: " + ", ".join(f"{k} {v}" for k, v in topics.most_common()))
    failed = sum(q["failed"] for q in status["queues"])
    lines.append(f"  failed jobs: {failed}")
    lines.append(f"  look around: {next_hint} posts mfa_russia | status")
    return "\n".join(lines)
