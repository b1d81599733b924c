"""`tgwatch listen --source mtproto`: the account pool, and a preview poller for the channels no
account can read, handing posts to the same sink as every other source.

``build_mtproto_listener`` is the source's composition root inside a listener process: it reads
TGWATCH_MTPROTO_*, finds the accounts (stored sessions, or TGWATCH_MTPROTO_ACCOUNTS), and wires
the pool to Redis, the sink, the post store and the metrics. Telethon is imported only when an
account is started, so nothing else in the process pays for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import redis
import structlog

from service.config import MtprotoSettings, Settings
from service.metrics import Metrics
from service.sources.base import PostSink
from service.sources.mtproto.client import MtprotoClient
from service.sources.mtproto.pool import AccountPool
from service.sources.mtproto.sessions import SessionVault
from service.sources.mtproto.writer import ChannelWriter

if TYPE_CHECKING:
    from service.sources.preview import PreviewPoller

log = structlog.get_logger(__name__)


class MtprotoListener:
    """The pool and its fallback poller, run until ``stop``."""

    def __init__(self, pool: AccountPool, fallback: PreviewPoller | None = None) -> None:
        self.pool = pool
        self.fallback = fallback

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self.pool.run(stop))]
        if self.fallback is not None:
            tasks.append(asyncio.create_task(self.fallback.run(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def ready(self) -> bool:
        """/readyz: False when this process runs accounts and none is connected."""
        return self.pool.ready()


def session_saver(
    vault: SessionVault,
) -> tuple[dict[str, str], Callable[[str, MtprotoClient], None]]:
    """What sessions were loaded, and an ``on_stop`` saving those Telegram changed meanwhile."""
    loaded: dict[str, str] = {}

    def save(name: str, client: MtprotoClient) -> None:
        session = client.session()
        if session.get_secret_value() and session.get_secret_value() != loaded.get(name):
            vault.save(name, session)

    return loaded, save


async def build_mtproto_listener(
    settings: Settings,
    connection: redis.Redis,
    redis_url: str,
    sink: PostSink,
    stack: AsyncExitStack,
    *,
    metrics: Metrics | None = None,
    explicit: bool = False,
    mtproto: MtprotoSettings | None = None,
) -> MtprotoListener | None:
    """The MTProto listener, or None when it is not configured (an error when ``explicit``:
    `--source mtproto` was asked for)."""
    report = log.error if explicit else log.debug
    mt = mtproto or settings.mtproto
    if not mt.configured:
        report("mtproto_not_configured", hint="set TGWATCH_MTPROTO_API_ID and _API_HASH")
        return None
    vault = SessionVault(mt.session_dir, mt.session_key)
    names = mt.accounts or vault.names()
    if not names:
        report("mtproto_no_accounts", hint="add one with: tgwatch accounts add NAME")
        return None

    from service.sources.preview import PreviewPoller, build_http_client
    from service.store import watchlist
    from service.store.accounts import AccountStore
    from service.store.channels import ChannelStore
    from service.store.posts import PostStore

    accounts = AccountStore.from_url(redis_url)
    stack.push_async_callback(accounts.aclose)
    channels = ChannelStore.from_url(redis_url)
    stack.push_async_callback(channels.aclose)
    source_metrics = metrics.mtproto if metrics is not None else None
    writer = ChannelWriter(sink, channels, accounts, PostStore(connection), metrics=source_metrics)

    async def watch() -> list[str]:
        added = await asyncio.to_thread(watchlist.channels, connection)
        return [*settings.channels, *mt.channels, *added]

    loaded, save = session_saver(vault)
    api_id, api_hash = mt.api_id, mt.api_hash
    assert api_id is not None and api_hash is not None

    def connect(name: str) -> MtprotoClient:
        from service.sources.mtproto.telethon_client import TelethonClient

        session = vault.load(name)
        loaded[name] = session.get_secret_value()
        return TelethonClient(session, api_id, api_hash)

    pool = AccountPool(
        names, connect, store=accounts, writer=writer, settings=mt, watch=watch,
        metrics=source_metrics, on_stop=save,
    )  # fmt: skip
    fallback = None
    if mt.fallback:
        http = await stack.enter_async_context(build_http_client(settings.preview_concurrency))
        fallback = PreviewPoller(
            [], sink, channels, http, base_url=settings.preview_url,
            interval=settings.preview_interval, backfill_pages=settings.preview_backfill_pages,
            concurrency=settings.preview_concurrency, channel_source=pool.fallback_channels,
            refresh_every=mt.tick_seconds, metrics=metrics,
        )  # fmt: skip
    log.info("mtproto_listener_built", accounts=names, fallback=mt.fallback)
    return MtprotoListener(pool, fallback)
