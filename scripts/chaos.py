"""Chaos: faults injected into a running tgwatch, and what they cost — lost, duplicated, late.

For each fault, on this machine, against a Redis of its own (append-only file, fsync every
second, as production runs it): a fresh Redis, a `tgwatch worker -n 2` group (supervised), a
signed-webhook receiver and a fake Telegram Bot API on loopback, subscriptions with a known
number of expected alerts, and `tgwatch ingest` of N posts. The fault is injected while the
posts or their alerts travel; the script then waits until every expected alert has arrived (or
gives up) and prints, per fault: posts stored, alerts unique and raw, lost, duplicated, the time
to full recovery after the fault ended, and how many worker processes the supervisor restarted.

Goal (printed with the figures): 0 lost, 0 duplicates beyond sends in flight at a crash,
recovery < 60 s, no manual action — for every fault. Exits non-zero when a goal is missed.

    python scripts/chaos.py                 # every fault, 5,000 posts each (~15 minutes)
    python scripts/chaos.py --short         # 2 faults on 600 posts (~2 minutes; the suite's)
    python scripts/chaos.py --fault redis-kill --posts 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.rules import parse_rules  # noqa: E402 - after the path is set
from service.core.signing import SignatureError, verify  # noqa: E402
from service.core.targets import TargetPolicy  # noqa: E402
from service.queue import SEEN_PREFIX  # noqa: E402
from service.store.rules import RuleStore  # noqa: E402
from service.store.workers import WorkerLeases  # noqa: E402
from tests.fakes.botapi import FakeBotAPI  # noqa: E402
from tests.reliability.servers import RedisServer, free_port  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"tgwatch-chaos-secret-key!").decode()
CHANNEL = "chaos"
TELEGRAM_CHATS = 5
RECOVERY_GOAL_SECONDS = 60.0
GIVE_UP_SECONDS = 300.0
# Retries short enough that an endpoint back after 2 minutes is served within the goal.
SHORT_WEBHOOK_SCHEDULE = "1,2,4,8,15,30,30,30,30,30,30,30"


# --- the parties on loopback -------------------------------------------------------------------
@dataclass
class Receiver:
    """A webhook endpoint that verifies signatures and counts alerts by webhook-id; it can be
    slowed (alerts in flight when a worker dies) and stopped and started on the same port."""

    port: int = field(default_factory=free_port)
    delay: float = 0.0
    raw: int = 0
    ids: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            verify([SECRET], headers, body)
        except SignatureError:
            self.refused += 1
            return web.Response(status=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.raw += 1
        webhook_id = headers["webhook-id"]
        self.ids[webhook_id] = self.ids.get(webhook_id, 0) + 1
        return web.Response(status=204)


def rules_yaml(receiver: Receiver) -> str:
    lines = [
        "subscriptions:",
        "  - id: ceasefire",
        "    query: ceasefire",
        "    notify:",
        f'      - webhook: {{url: "{receiver.url}", secret: "{SECRET}"}}',
    ]
    for chat in range(TELEGRAM_CHATS):
        lines += [f"  - id: tg{chat}", f"    query: tgchat{chat}", "    notify:",
                  f"      - telegram: {1000 + chat}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_updates(path: Path, posts: int) -> tuple[int, int]:
    """Bot API channel posts: a third mention the ceasefire (webhook alerts), every hundredth
    names a Telegram chat; returns (expected webhook alerts, expected Telegram alerts)."""
    webhook = telegram = 0
    start = int(time.time()) - posts
    with path.open("w", encoding="utf-8") as out:
        for i in range(1, posts + 1):
            text = f"Bulletin {i}: " + ("ceasefire talks resume" if i % 3 == 0 else "weather")
            webhook += i % 3 == 0
            if i % 100 == 0:
                text += f" tgchat{(i // 100) % TELEGRAM_CHATS}"
                telegram += 1
            update = {"update_id": i, "channel_post": {
                "message_id": i, "date": start + i, "text": text,
                "chat": {"id": -1001999000111, "type": "channel", "title": "Chaos",
                         "username": CHANNEL},
            }}  # fmt: skip
            out.write(json.dumps(update) + "\n")
    return webhook, telegram


# --- one run -------------------------------------------------------------------------------------
@dataclass
class Result:
    fault: str
    posts: int
    stored: int = 0
    expected: int = 0
    unique: int = 0
    raw: int = 0
    recovery: float | None = None
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.expected - self.unique

    @property
    def duplicated(self) -> int:
        return self.raw - self.unique

    def ok(self, in_flight: int) -> bool:
        recovered = self.recovery is not None and self.recovery < RECOVERY_GOAL_SECONDS
        return self.lost == 0 and self.duplicated <= in_flight and recovered


class Run:
    """The parties and processes of one fault's run."""

    def __init__(self, work: Path, posts: int, env_extra: dict[str, str]) -> None:
        self.work = work
        self.posts = posts
        self.server = RedisServer(work / "redis")
        self.receiver = Receiver()
        self.telegram = FakeBotAPI(enforce_limits=False)
        self.env_extra = env_extra
        self.group: asyncio.subprocess.Process | None = None
        self.group_log = work / "workers.log"

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TGWATCH_")}
        return {**base, "TGWATCH_REDIS_URL": self.server.url, "TGWATCH_LOG_FORMAT": "json",
                "TGWATCH_DATA_DIR": str(self.work / "data"), "PYTHONPATH": str(ROOT),
                "TGWATCH_TELEGRAM_TOKEN": self.telegram.token,
                "TGWATCH_TELEGRAM_API_URL": self.telegram.base_url,
                "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
                "TGWATCH_DELIVERY_PER_CHAT_INTERVAL": "0.05",
                "TGWATCH_DELIVERY_WEBHOOK_TIMEOUT": "5",
                **self.env_extra}  # fmt: skip

    async def start(self) -> tuple[int, int]:
        self.server.start()
        await self.receiver.start()
        await self.telegram.start()
        client = redis.Redis.from_url(self.server.url)
        loopback = TargetPolicy(allow_loopback=True)  # the receiver is on this machine
        RuleStore(client).replace(parse_rules(rules_yaml(self.receiver), targets=loopback))
        client.close()
        expected = write_updates(self.work / "updates.jsonl", self.posts)
        with self.group_log.open("wb") as log:
            self.group = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service.cli", "worker", "-n", "2",
                env=self.env(), cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        await self.until(lambda: len(self.alive_workers()) == 2, 120, "two workers")
        return expected

    async def ingest(self, path: Path | None = None) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "ingest", "--no-progress",
            str(path or self.work / "updates.jsonl"),
            env=self.env(), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        (self.work / "ingest.log").write_bytes(out)
        return process.returncode or 0

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url, socket_timeout=2)

    def alive_workers(self) -> set[int]:
        try:
            client = self.client()
            leases = WorkerLeases(client)
            pids = {int(l.split(":")[1]) for l in leases.holders() if leases.alive(l)}  # noqa: E741
            client.close()
        except redis.RedisError:
            return set()
        return pids

    def stored(self) -> int:
        """Post versions a worker confirmed stored (their two-week "seen" marks): exact, where
        the channel's stats would count again a post re-stored after it left the capped store."""
        try:
            client = self.client()
            count = sum(1 for key in client.scan_iter(f"{SEEN_PREFIX}{CHANNEL}/*", count=1000)
                        if client.get(key) == b"stored")  # fmt: skip
            client.close()
        except redis.RedisError:
            return -1
        return count

    def delivered(self) -> tuple[int, int]:
        """(unique, raw) alerts received by the webhook and Telegram parties."""
        telegram = [(m["chat_id"], m.get("text") or "") for m in self.telegram.sent]
        unique = len(self.receiver.ids) + len(set(telegram))
        return unique, self.receiver.raw + len(telegram)

    def diagnose(self) -> list[str]:
        """Where the missing alerts are, when some are: decided but never received, dead
        letters, jobs still queued or held."""
        notes: list[str] = []
        try:
            client = self.client()
            alerts = [json.loads(fields[b"alert"])
                      for _, fields in client.xrange("tgwatch:alerts", count=100_000)]  # fmt: skip
            hooks = {a["id"] for a in alerts if a["subscription_id"] == "ceasefire"}
            webhook_missing = sorted(hooks - set(self.receiver.ids))
            chats = {a["post"]["link"] for a in alerts if a["subscription_id"] != "ceasefire"}
            sent = " ".join(str(m.get("text")) for m in self.telegram.sent)
            telegram_missing = sorted(link for link in chats if link not in sent)
            dead = client.llen("tgwatch:delivery:dead")
            queued = {
                q: client.llen(f"rq:queue:{q}") for q in ("tgwatch-posts", "tgwatch-deliveries")
            }
            failed = {
                q: client.zcard(f"rq:failed:{q}") for q in ("tgwatch-posts", "tgwatch-deliveries")
            }
            client.close()
        except redis.RedisError as exc:
            return [f"diagnosis failed: {exc}"]
        if dead or any(failed.values()):
            notes.append(f"dead letters {dead}, failed jobs {failed}")
        if any(queued.values()):
            notes.append(f"still queued {queued}")
        if webhook_missing or telegram_missing:
            notes.append(f"decided, not received: webhook {webhook_missing[:3]}, "
                         f"telegram {telegram_missing[:3]} (of {len(alerts)} decided)")  # fmt: skip
        return notes

    def restarts(self) -> int:
        text = self.group_log.read_text(errors="replace") if self.group_log.exists() else ""
        return text.count('"worker_process_restarted"')

    async def until(self, condition: Callable[[], bool], seconds: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > seconds:
                raise TimeoutError(what)
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def stop(self) -> None:
        if self.group is not None and self.group.returncode is None:
            os.killpg(self.group.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.group.wait(), 60)
            except TimeoutError:
                os.killpg(self.group.pid, signal.SIGKILL)
        await self.receiver.stop()
        await self.telegram.stop()
        self.server.stop(signal.SIGKILL)


# --- the faults --------------------------------------------------------------------------------
Fault = Callable[[Run, random.Random], Awaitable[None]]


async def kill_workers(run: Run, rng: random.Random, times: int, gap: float) -> None:
    for _ in range(times):
        # A worker killed a moment ago still has its alive key: pick among those that run, and
        # wait for the supervisor to have restarted one if none does.
        await run.until(lambda: bool(_running_workers(run)), 120, "a running worker to kill")
        os.kill(rng.choice(_running_workers(run)), signal.SIGKILL)
        await asyncio.sleep(gap)


def _running_workers(run: Run) -> list[int]:
    return [pid for pid in sorted(run.alive_workers()) if _running(pid)]


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def fault_worker_kill_posts(run: Run, rng: random.Random) -> None:
    ingest = asyncio.create_task(run.ingest())
    await run.until(lambda: run.stored() > 0, 120, "the first stored post")
    await kill_workers(run, rng, times=6 if run.posts >= 2000 else 2, gap=1.5)
    await ingest


async def fault_worker_kill_deliveries(run: Run, rng: random.Random) -> None:
    run.receiver.delay = 0.3  # alerts in flight when a worker dies
    await run.ingest()
    await run.until(lambda: run.receiver.raw > 0, 120, "the first alert")
    await kill_workers(run, rng, times=4, gap=1.5)
    run.receiver.delay = 0.0


async def fault_redis(run: Run, sig: int, down: float) -> None:
    await run.ingest()
    await run.until(lambda: run.stored() > 0, 120, "the first stored post")
    run.server.stop(sig)
    await asyncio.sleep(down)  # the outage itself: Redis is away this long
    run.server.start()


async def fault_redis_term(run: Run, rng: random.Random) -> None:
    await fault_redis(run, signal.SIGTERM, 10.0 if run.posts >= 2000 else 5.0)


async def fault_redis_kill(run: Run, rng: random.Random) -> None:
    await fault_redis(run, signal.SIGKILL, 10.0)


async def fault_receiver_down(run: Run, rng: random.Random) -> None:
    await run.receiver.stop()
    await run.ingest()
    await asyncio.sleep(120.0)  # the endpoint is down this long
    await run.receiver.start()


FAULTS: dict[str, tuple[str, Fault, dict[str, str]]] = {
    "worker-kill-posts": ("kill -9 of workers while posts are processed",
                          fault_worker_kill_posts, {}),
    "worker-kill-deliveries": ("kill -9 of workers while alerts are sent",
                               fault_worker_kill_deliveries, {}),
    "redis-term": ("Redis SIGTERM, down 10 s", fault_redis_term, {}),
    "redis-kill": ("Redis kill -9, down 10 s", fault_redis_kill, {}),
    "receiver-down": ("webhook receiver down 120 s (short retry schedule)", fault_receiver_down,
                      {"TGWATCH_DELIVERY_WEBHOOK_SCHEDULE": SHORT_WEBHOOK_SCHEDULE}),
}  # fmt: skip
SHORT = ("worker-kill-posts", "redis-term")


async def run_fault(name: str, posts: int, work: Path, seed: int) -> Result:
    label, fault, env = FAULTS[name]
    run = Run(work, posts, env)
    result = Result(label, posts)
    try:
        webhook, telegram = await run.start()
        result.expected = webhook + telegram
        await fault(run, random.Random(seed))
        ended = time.monotonic()
        try:
            await run.until(lambda: run.delivered()[0] >= result.expected, GIVE_UP_SECONDS,
                            "every expected alert")  # fmt: skip
            result.recovery = time.monotonic() - ended
        except TimeoutError:
            result.notes.append(f"not recovered after {GIVE_UP_SECONDS:.0f} s")
        await asyncio.sleep(2.0)  # late duplicates, if any, show up here
        result.notes.extend(run.diagnose())
        result.stored = run.stored()
        result.unique, result.raw = run.delivered()
        result.restarts = run.restarts()
    finally:
        await run.stop()
    return result


def report(results: list[Result]) -> bool:
    print(f"\n{'fault':<52} {'posts':>11} {'alerts u/raw':>13} {'lost':>5} {'dup':>4} "
          f"{'recovered':>10} {'restarts':>8}")  # fmt: skip
    ok = True
    for r in results:
        recovery = f"{r.recovery:.1f} s" if r.recovery is not None else "never"
        kills = 6 if "kill -9 of workers" in r.fault else 1
        good = r.ok(in_flight=kills)
        ok &= good
        print(f"{r.fault:<52} {r.stored:>5}/{r.posts:<5} {r.unique:>6}/{r.raw:<6} {r.lost:>5} "
              f"{r.duplicated:>4} {recovery:>10} {r.restarts:>8}  {'ok' if good else 'MISSED'}"
              + (f"  ({'; '.join(r.notes)})" if r.notes else ""))  # fmt: skip
    print(f"\nGoal: 0 lost, duplicates only for sends in flight at a crash, recovery < "
          f"{RECOVERY_GOAL_SECONDS:.0f} s, no manual action, for every fault: "
          f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return ok


async def main_async(args: argparse.Namespace) -> bool:
    names = list(SHORT) if args.short else (args.fault or list(FAULTS))
    posts = args.posts or (600 if args.short else 5000)
    results = []
    with tempfile.TemporaryDirectory(prefix="tgwatch-chaos-") as tmp_dir:
        tmp = args.keep or tmp_dir
        for number, name in enumerate(names):
            work = Path(tmp) / name
            work.mkdir()
            print(f"[{number + 1}/{len(names)}] {FAULTS[name][0]} on {posts} posts ...",
                  flush=True)  # fmt: skip
            results.append(await run_fault(name, posts, work, args.seed + number))
    return report(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=0, help="posts per fault")
    parser.add_argument("--short", action="store_true", help="the suite's 2-minute version")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS),
                        help="run only these faults (repeatable)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="keep each fault's logs and data in this directory")
    ok = asyncio.run(main_async(parser.parse_args()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
