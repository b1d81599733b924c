"""`tgwatch status`: queues, workers, failed jobs and channels, read from Redis."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from service import constants
from service.store.channels import list_channel_health
from service.store.posts import PostStore
from service.store.rejected import count_rejected

QUEUES = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)
FAILED_SHOWN = 5


def _failed(name: str, connection: redis.Redis) -> list[dict[str, Any]]:
    registry = FailedJobRegistry(name, connection=connection, serializer=JSONSerializer)
    jobs = []
    for job_id in registry.get_job_ids(0, FAILED_SHOWN - 1):
        job = Queue(name, connection=connection, serializer=JSONSerializer).fetch_job(job_id)
        if job is None:
            continue
        result = job.latest_result()
        exc = (result.exc_string if result is not None else None) or ""
        reason = exc.strip().splitlines()[-1] if exc.strip() else "unknown"
        jobs.append({"id": job_id, "description": job.description, "reason": reason})
    return jobs


def collect_status(connection: redis.Redis) -> dict[str, Any]:
    queues = []
    for name in QUEUES:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        queues.append({
            "name": name,
            "queued": queue.count,
            "started": len(StartedJobRegistry(name, connection=connection)),
            "scheduled": len(ScheduledJobRegistry(name, connection=connection)),  # type: ignore[no-untyped-call]
            "failed": len(FailedJobRegistry(name, connection=connection)),
            "failed_jobs": _failed(name, connection),
        })  # fmt: skip
    workers = [
        {
            "name": w.name,
            "state": str(w.get_state()),
            "queues": w.queue_names(),
            "successful": w.successful_job_count,
            "failed": w.failed_job_count,
        }
        for w in Worker.all(connection=connection)
    ]
    store = PostStore(connection)
    health = {entry.channel: entry.to_dict() for entry in list_channel_health(connection)}
    channels = []
    for channel in sorted(set(store.channels()) | set(health)):
        entry: dict[str, Any] = {"channel": channel, **store.stats(channel)}
        entry.update({k: v for k, v in health.get(channel, {}).items() if v is not None})
        channels.append(entry)
    return {
        "queues": queues,
        "workers": workers,
        "channels": channels,
        "rejected": count_rejected(connection),
    }


def render_status(report: dict[str, Any]) -> str:
    lines = ["Queues:"]
    for q in report["queues"]:
        lines.append(f"  {q['name']:<22} queued {q['queued']:>6}  running {q['started']:>3}  "
                     f"scheduled {q['scheduled']:>4}  failed {q['failed']:>4}")  # fmt: skip
        for job in q["failed_jobs"]:
            lines.append(f"    failed {job['id']}: {job['reason'][:120]}")
    lines.append(f"Workers: {len(report['workers'])}")
    for w in report["workers"]:
        lines.append(
            f"  {w['name']:<40} {w['state']:<10} ok {w['successful']} failed {w['failed']}"
        )
    lines.append(f"Channels: {len(report['channels'])}")
    for ch in report["channels"]:
        health = ""
        if ch.get("lag_seconds") is not None:
            health += f"  lag {float(ch['lag_seconds']):.0f}s"
        if ch.get("last_error"):
            health += f"  last error: {ch['last_error']}"
        if ch.get("failures"):
            health += f" ({ch['failures']} in a row)"
        watermark = f"  watermark {ch['watermark']}" if ch.get("watermark") else ""
        lines.append(f"  {ch['channel']:<24} posts {ch.get('posts', 0):>5}  "
                     f"versions {ch.get('versions', 0):>5}  last post {ch.get('last_date', '-')}"
                     f"{watermark}{health}")  # fmt: skip
    lines.append(f"Set-aside input: {report['rejected']} (tgwatch rejected)")
    return "\n".join(lines)
