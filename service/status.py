"""`tgwatch status`: queues, workers, deliveries and channels — read from Redis, never written.

RQ's own registry accessors clean up as they count (a read that fails "abandoned" jobs and
drops worker entries), so this reads the keys directly: LLEN and ZCARD, the worker hashes, and
tgwatch's own state (held jobs, dead letters, channel health).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker_registration import REDIS_WORKER_KEYS

from service import constants
from service.redis import text
from service.store.accounts import channel_sources, list_accounts
from service.store.channels import list_channel_health
from service.store.deliveries import Ledger
from service.store.posts import PostStore
from service.store.rejected import count_rejected
from service.store.workers import WorkerLeases

QUEUES = (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)
FAILED_SHOWN = 5
DEAD_SHOWN = 5


def _registry_key(cls: Any, name: str) -> str:
    return str(cls.key_template.format(name))


def _failed(name: str, connection: redis.Redis) -> list[dict[str, Any]]:
    queue = Queue(name, connection=connection, serializer=JSONSerializer)
    key = _registry_key(FailedJobRegistry, name)
    jobs = []
    for raw in connection.zrevrange(key, 0, FAILED_SHOWN - 1):
        job_id = text(raw).partition(":")[0]
        job = queue.fetch_job(job_id)
        if job is None:
            continue
        result = job.latest_result()
        exc = (result.exc_string if result is not None else None) or ""
        reason = exc.strip().splitlines()[-1] if exc.strip() else "unknown"
        jobs.append({"id": job_id, "description": job.description, "reason": reason})
    return jobs


def _queues(connection: redis.Redis) -> list[dict[str, Any]]:
    found = []
    for name in QUEUES:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        found.append({
            "name": name,
            "queued": int(connection.llen(queue.key)),
            "started": int(connection.zcard(_registry_key(StartedJobRegistry, name))),
            "scheduled": int(connection.zcard(_registry_key(ScheduledJobRegistry, name))),
            "failed": int(connection.zcard(_registry_key(FailedJobRegistry, name))),
            "failed_jobs": _failed(name, connection),
        })  # fmt: skip
    return found


def _workers(connection: redis.Redis, now: float) -> list[dict[str, Any]]:
    """RQ's registered workers, each marked ``alive`` or not: by its process's alive key (a
    tgwatch worker, whose RQ name starts with its lease), else by RQ's last heartbeat."""
    leases = WorkerLeases(connection)
    found = []
    for key in sorted(text(k) for k in connection.smembers(REDIS_WORKER_KEYS)):
        data = {text(k): text(v) for k, v in connection.hgetall(key).items()}
        if not data:
            continue  # expired: RQ drops the entry on its next cleanup
        beat = data.get("last_heartbeat", "")
        try:
            age = now - datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp()
        except ValueError:
            age = float("inf")
        name = key.removeprefix("rq:worker:")
        lease = name.rpartition("/")[0]
        if lease:
            alive = "death" not in data and leases.alive(lease)
        else:
            alive = "death" not in data and age <= constants.WORKER_ALIVE_TTL_SECONDS
        found.append({
            "name": name,
            "state": data.get("state", "?"),
            "queues": data.get("queues", "").split(","),
            "successful": int(data.get("successful_job_count") or 0),
            "failed": int(data.get("failed_job_count") or 0),
            "heartbeat_age": round(age, 1),
            "alive": alive,
        })  # fmt: skip
    return found


def _held(connection: redis.Redis) -> dict[str, Any]:
    """Jobs taken by worker processes: by live ones (running) and by dead ones (to recover)."""
    leases = WorkerLeases(connection)
    dead = set(leases.dead_holders())
    held = {lease: len(leases.held(lease)) for lease in leases.holders()}
    return {
        "running": sum(n for lease, n in held.items() if lease not in dead),
        "awaiting_recovery": sum(n for lease, n in held.items() if lease in dead),
        "dead_workers": sorted(dead),
    }


def _dead_letters(connection: redis.Redis) -> dict[str, Any]:
    ledger = Ledger(connection)
    letters = ledger.dead_letters()
    latest = [
        {"at": e.get("at"), "reason": e.get("reason"), "key": e.get("key")}
        for e in letters[-DEAD_SHOWN:]
    ]
    return {"count": len(letters), "latest": latest}


def collect_status(connection: redis.Redis) -> dict[str, Any]:
    now = time.time()
    store = PostStore(connection)
    health = {entry.channel: entry.to_dict() for entry in list_channel_health(connection)}
    readers = channel_sources(connection)  # the MTProto source: which account, or a fallback
    channels = []
    for channel in sorted(set(store.channels()) | set(health) | set(readers)):
        entry: dict[str, Any] = {"channel": channel, **store.stats(channel)}
        entry.update({k: v for k, v in health.get(channel, {}).items() if v is not None})
        entry.update(readers.get(channel, {}))
        channels.append(entry)
    return {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "queues": _queues(connection),
        "workers": _workers(connection, now),
        "jobs_held": _held(connection),
        "dead_letters": _dead_letters(connection),
        "channels": channels,
        "accounts": [record.to_dict() for record in list_accounts(connection)],
        "rejected": count_rejected(connection),
    }


def render_status(report: dict[str, Any]) -> str:
    lines = ["Queues:"]
    for q in report["queues"]:
        lines.append(f"  {q['name']:<22} queued {q['queued']:>6}  running {q['started']:>3}  "
                     f"delayed {q['scheduled']:>4}  failed {q['failed']:>4}")  # fmt: skip
        for job in q["failed_jobs"]:
            lines.append(f"    failed {job['id']}: {job['reason'][:120]}")
    held = report["jobs_held"]
    if held["awaiting_recovery"]:
        lines.append(f"  {held['awaiting_recovery']} job(s) held by dead workers: back on "
                     "their queues at a live worker's next tick")  # fmt: skip
    workers = report["workers"]
    alive = sum(1 for w in workers if w["alive"])
    lines.append(f"Workers: {alive} alive" + (f", {len(workers) - alive} stopped" if
                                               len(workers) > alive else ""))  # fmt: skip
    for w in workers:
        mark = "" if w["alive"] else "  HEARTBEAT STOPPED"
        lines.append(f"  {w['name']:<34} {w['state']:<10} ok {w['successful']} "
                     f"failed {w['failed']}{mark}")  # fmt: skip
    dead = report["dead_letters"]
    lines.append(f"Dead letters: {dead['count']}" + (
        " (tgwatch deliveries list; tgwatch deliveries redeliver --all)" if dead["count"] else ""
    ))  # fmt: skip
    for entry in dead["latest"]:
        lines.append(f"  {entry['at']}  {str(entry['reason'])[:100]}")
    lines.append(f"Channels: {len(report['channels'])}")
    for ch in report["channels"]:
        health = ""
        if ch.get("lag_seconds") is not None:
            health += f"  lag {float(ch['lag_seconds']):.0f}s"
        if ch.get("last_error"):
            health += f"  last error: {ch['last_error']}"
        if ch.get("failures"):
            health += f" ({ch['failures']} in a row)"
        if ch.get("fallback"):
            how = "preview polls it" if ch.get("polled") else "not read"
            health += f"  no account reads it ({ch['fallback']}): {how}"
        elif ch.get("account"):
            health += f"  via account {ch['account']}"
        watermark = f"  watermark {ch['watermark']}" if ch.get("watermark") else ""
        lines.append(f"  {ch['channel']:<24} posts {ch.get('posts', 0):>5}  "
                     f"versions {ch.get('versions', 0):>5}  last post {ch.get('last_date', '-')}"
                     f"{watermark}{health}")  # fmt: skip
    if report.get("accounts"):
        lines.append(f"Accounts (MTProto): {len(report['accounts'])}")
        for account in report["accounts"]:
            up = "connected" if account["connected"] else "running" if account["running"] else "-"
            state = account["state"] + (f" ({account['reason']})" if account["reason"] else "")
            flood = max(0.0, (account["flood_until"] or 0.0) - time.time())
            lines.append(f"  {account['name']:<16} {state:<28} {up:<10} "
                         f"channels {account['channels']}"
                         + (f"  flood wait {flood:.0f}s" if flood else ""))  # fmt: skip
    lines.append(f"Set-aside input: {report['rejected']} (tgwatch rejected)")
    return "\n".join(lines)
