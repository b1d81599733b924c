"""The ops endpoints every long-running process serves: /metrics, /healthz and /readyz.

Async processes (listener, bot, API) add ``ops_app`` to their loop with ``start_ops_server``.
RQ workers run synchronously, so ``start_ops_server_thread`` runs the same app on a small event
loop in a daemon thread of the worker process; each worker process serves its own port
(``ops_ports`` plans them so no two processes of a group collide), which is correct because
workers do not fork per job. A port that cannot be bound is logged as an error and the process
goes on without its endpoints: losing a worker's metrics is better than losing the worker.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack

import redis
import structlog
from aiohttp import web
from prometheus_client.exposition import choose_encoder
from rq import Worker

from service.metrics import Metrics

log = structlog.get_logger(__name__)

Readiness = Callable[[], Awaitable[dict[str, bool]]]
SyncReadiness = Callable[[], dict[str, bool]]
Check = Callable[[], bool] | Callable[[], Awaitable[bool]]

# Kubernetes probes time out after 1 s by default; a readiness check slower than this counts as
# failed rather than hanging the probe.
READINESS_TIMEOUT_SECONDS = 0.9
# A stopping server lets in-flight scrapes finish for this long.
SHUTDOWN_TIMEOUT_SECONDS = 2.0


def ops_app(metrics: Metrics, readiness: Readiness) -> web.Application:
    """An aiohttp app with GET /metrics, /healthz and /readyz."""

    async def metrics_handler(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Collecting reads Redis with a blocking client: keep it off the event loop.
        body = await asyncio.to_thread(encoder, metrics.exposition_registry())
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        try:
            checks = await asyncio.wait_for(readiness(), READINESS_TIMEOUT_SECONDS)
        except Exception as exc:  # a failing check means "not ready", never a 500
            log.warning("readiness_check_failed", error=type(exc).__name__)
            checks = {"readiness": False}
        failed = sorted(name for name, ok in checks.items() if not ok)
        body = {"ready": not failed, "checks": checks, "failed": failed}
        return web.json_response(body, status=503 if failed else 200)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_ops_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one, see ``bound_port``)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("ops_server_started", host=host, port=bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner actually listens on."""
    address = runner.addresses[0]
    return int(address[1])


class OpsServerThread:
    """The ops app on its own event loop in a daemon thread, for synchronous processes."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tgwatch-ops", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("ops server did not start in time")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(start_ops_server(self._app, self.host, self.port))
        except BaseException as exc:  # handed to start(), which raises it in the caller
            self._error = exc
            self._started.set()
            loop.close()
            return
        self.port = bound_port(runner)
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


def start_ops_server_thread(
    metrics: Metrics, readiness_sync: SyncReadiness, host: str, port: int
) -> OpsServerThread:
    """Start the ops endpoints of a synchronous process (an RQ worker) in a daemon thread."""

    async def readiness() -> dict[str, bool]:
        return await asyncio.to_thread(readiness_sync)

    server = OpsServerThread(ops_app(metrics, readiness), host, port)
    server.start()
    return server


def ops_ports(base: int, workers: int, *, listener: bool) -> tuple[int, list[int]]:
    """The ops ports of a process group: with ``listener`` (``tgwatch run``) the listeners serve
    ``base`` and worker *i* ``base + 1 + i``; without (``tgwatch worker -n N``) worker *i*
    serves ``base + i``. A base of 0 turns them all off."""
    if base == 0:
        return 0, [0] * workers
    first = base + 1 if listener else base
    return (base if listener else 0), [first + index for index in range(workers)]


async def start_ops(
    metrics: Metrics,
    readiness: Readiness,
    host: str,
    port: int,
    stack: AsyncExitStack,
) -> int | None:
    """Serve the ops endpoints of an async process on ``host:port`` until ``stack`` closes;
    returns the bound port (None when off, or when the port could not be bound)."""
    if not port:
        return None
    try:
        runner = await start_ops_server(ops_app(metrics, readiness), host, port)
    except OSError as exc:
        log.error("ops_port_unavailable", host=host, port=port, error=str(exc))
        return None
    stack.push_async_callback(runner.cleanup)
    return bound_port(runner)


# --- readiness checks ---------------------------------------------------------------------------
def redis_ready(client: redis.Redis) -> bool:
    """Redis answers a PING."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def workers_registered(client: redis.Redis, queue_names: Iterable[str]) -> bool:
    """Every queue in ``queue_names`` has at least one RQ worker registered on it."""
    try:
        workers = Worker.all(connection=client)
    except redis.RedisError:
        return False
    listening = {name for worker in workers for name in worker.queue_names()}
    return all(name in listening for name in queue_names)


def sync_readiness(checks: Mapping[str, Callable[[], bool]]) -> SyncReadiness:
    """One readiness function from named checks; a check that raises counts as failed."""

    def run() -> dict[str, bool]:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = bool(check())
            except Exception:  # a broken check is a failed check
                results[name] = False
        return results

    return run


def async_readiness(checks: Mapping[str, Check]) -> Readiness:
    """Like ``sync_readiness`` for async processes: coroutine checks are awaited, plain ones
    (which may block on Redis) run in a thread."""

    async def one(check: Check) -> bool:
        if inspect.iscoroutinefunction(check):
            return bool(await check())
        return bool(await asyncio.to_thread(check))

    async def run() -> dict[str, bool]:
        names = list(checks)
        outcomes = await asyncio.gather(*(one(checks[n]) for n in names), return_exceptions=True)
        return {name: outcome is True for name, outcome in zip(names, outcomes, strict=True)}

    return run
