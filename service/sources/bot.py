"""The Bot API source: channel posts by long polling or webhook (aiogram), handed to the sink.

Every update goes through aiogram's Dispatcher and a Router whose two handlers
(``channel_post``, ``edited_channel_post``) dump the Message back to Bot API JSON and parse it with
``formats.botapi.parse_update``, so the Bot API has one parser whatever the way in. Album items
are held briefly and emitted as one merged post. An update aiogram or the parser cannot read is
set aside with ``sink.reject`` and the listener goes on.

The bot token is part of every Bot API URL, so errors are logged by type with the token cut out
of their text (``redact``); aiogram's own loggers are kept at WARNING by ``configure_logging``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import redis
import structlog
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import DeleteWebhook, SetWebhook, TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

from service import constants
from service.config import Settings
from service.core.formats.botapi import merge_albums, parse_update
from service.core.formats.result import FormatError, Rejected
from service.core.post import Post
from service.core.retry import backoff, bounded_delay
from service.metrics import Metrics
from service.redis import Outage
from service.sources.base import PostSink, wait_or_stop
from service.telegram import make_bot

log = structlog.get_logger(__name__)

SOURCE = "botapi"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
Mode = Literal["polling", "webhook"]
T = TypeVar("T")


class BotListenerError(Exception):
    """The listener cannot run (no token, token refused, webhook without a secret)."""


class GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """``getUpdates`` returning plain dicts, so one malformed update cannot fail its batch.

    aiogram's GetUpdates validates the whole response at once; here each update is validated on
    its own and a bad one is set aside while the rest of the batch goes through.
    """

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def build_bot(settings: Settings) -> Bot:
    """A Bot on the configured Bot API server (self-hosted servers set TGWATCH_TELEGRAM_API_URL)."""
    if settings.telegram_token is None:
        raise BotListenerError("TGWATCH_TELEGRAM_TOKEN is not set")
    return make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url)


def make_redactor(token: str) -> Callable[[str], str]:
    """A function that removes the token (and its secret half) from a text."""
    secrets = [part for part in (token, token.partition(":")[2]) if len(part) >= 8]

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


@dataclass
class ListenerStats:
    """Counts since start, for logs and the quick-start summary."""

    updates: int = 0
    posts: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass
class _Album:
    posts: list[Post] = field(default_factory=list)
    last_seen: float = 0.0
    task: asyncio.Task[None] | None = None


class UpdateIntake:
    """Bot API update dicts in, posts out to the sink: parse, merge albums, set bad ones aside.

    Album items are buffered per (channel, media_group_id) until none has arrived for
    ``album_wait`` seconds, then merged by ``merge_albums`` into one post. ``close()`` emits what
    is still buffered. Errors of the sink propagate (the caller retries the update); errors of
    the input never do.
    """

    def __init__(
        self, sink: PostSink, *, album_wait: float = constants.BOT_ALBUM_WAIT_SECONDS
    ) -> None:
        self.sink = sink
        self.album_wait = album_wait
        self.stats = ListenerStats()
        self._albums: dict[tuple[str, str], _Album] = {}
        self._timers: set[asyncio.Task[None]] = set()

    async def handle(self, update: dict[str, Any]) -> None:
        self.stats.updates += 1
        try:
            post = parse_update(update, source=SOURCE)
        except FormatError as exc:
            await self.reject(update, str(exc))
            return
        except Exception as exc:  # a parser bug must not stop the listener or loop on one update
            await self.reject(update, f"parser error: {type(exc).__name__}: {exc}")
            return
        if post is None:
            return
        if post.album_id is None:
            await self._put(post)
        else:
            self._hold(post)

    @property
    def pending_albums(self) -> int:
        """Albums waiting for their last item."""
        return len(self._albums)

    async def reject(self, update: object, reason: str) -> None:
        index: int | str = "webhook"
        if isinstance(update, dict) and isinstance(update.get("update_id"), int):
            index = update["update_id"]
        self.stats.rejected += 1
        log.warning("bot_update_rejected", update_id=index, reason=reason)
        await self.sink.reject(Rejected.of(SOURCE, index, reason, update))

    async def close(self) -> None:
        """Emit every buffered album now (shutdown must not lose them)."""
        # A timer whose album is still buffered is asleep and safe to cancel; one whose album is
        # gone is putting it into the sink right now and is awaited instead.
        tasks = {album.task for album in self._albums.values() if album.task is not None}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        for key in list(self._albums):
            await self._flush(key)

    async def _put(self, post: Post) -> None:
        self.stats.posts += 1
        if await self.sink.put(post):
            self.stats.enqueued += 1
        else:
            self.stats.duplicates += 1

    def _hold(self, post: Post) -> None:
        loop = asyncio.get_running_loop()
        key = (post.channel_key, str(post.album_id))
        album = self._albums.setdefault(key, _Album())
        album.posts.append(post)
        album.last_seen = loop.time()
        if album.task is None:
            album.task = asyncio.create_task(self._flush_when_quiet(key))
            self._timers.add(album.task)
            album.task.add_done_callback(self._timers.discard)

    async def _flush_when_quiet(self, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        while (album := self._albums.get(key)) is not None:
            delay = album.last_seen + self.album_wait - loop.time()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        outage = Outage("bot-albums")
        while True:
            try:
                await self._flush(key)
            except redis.RedisError as exc:
                # The album is kept until it is on the queue: nothing upstream retries a timer.
                await asyncio.sleep(outage.failed(exc))
                continue
            except Exception as exc:
                log.error("bot_album_put_failed", album=key[1], channel=key[0], error=repr(exc))
            outage.recovered()
            return

    async def _flush(self, key: tuple[str, str]) -> None:
        album = self._albums.get(key)
        if album is None:
            return
        for post in merge_albums(album.posts):
            await self._put(post)
        self._albums.pop(key, None)


def is_channel_update(raw: dict[str, Any]) -> bool:
    """A channel post or its edit: read by the project's own parser (the one gate for posts),
    never validated by aiogram's models first — those refuse real updates that lack a field a
    newer Bot API made required, or carry one they do not know yet."""
    return any(kind in raw for kind in constants.BOT_ALLOWED_UPDATES)


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "update"
    return f"not a valid Update: {where}: {first['msg']} ({exc.error_count()} errors)"


class _StoppedError(Exception):
    """The stop event was set while waiting for the Bot API."""


class _WebhookHandler(SimpleRequestHandler):
    """aiogram's handler with the secret checked first and malformed updates set aside.

    Updates are handled before the answer (not in the background): a 200 then means the post is
    in the sink, and a failing sink answers 500 so Telegram delivers the update again.
    """

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret: str, intake: UpdateIntake) -> None:
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret)
        self.intake = intake

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        """The presented secret compared in constant time, as bytes: a header holding
        characters outside ASCII is a wrong secret (401), not an error (``compare_digest``
        refuses non-ASCII strings)."""
        expected = (self.secret_token or "").encode("utf-8")
        presented = telegram_secret_token.encode("utf-8", "surrogateescape")
        return bool(expected) and secrets.compare_digest(presented, expected)

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            log.warning("bot_webhook_unauthorized", remote=request.remote)
            return web.Response(status=401, text="Unauthorized")
        body = await request.text()
        try:
            raw = bot.session.json_loads(body)
        except ValueError:
            await self.intake.reject(body, "webhook body is not JSON")
            return web.Response(status=400, text="Bad Request")
        if isinstance(raw, dict) and is_channel_update(raw):
            await self.intake.handle(raw)
            return web.json_response({})
        try:
            update = Update.model_validate(raw, context={"bot": bot})
        except ValidationError as exc:
            # Answer 200: Telegram would redeliver a 4xx/5xx forever; the update is set aside.
            await self.intake.reject(raw, _validation_reason(exc))
            return web.json_response({})
        await self.dispatcher.feed_update(bot, update, **self.data)
        return web.json_response({})


def poll_error_code(exc: BaseException) -> str:
    """A short, bounded label for a failed getUpdates (metrics)."""
    if isinstance(exc, TelegramRetryAfter):
        return "http_429"
    if isinstance(exc, TelegramServerError):
        return "http_5xx"
    if isinstance(exc, TelegramNetworkError | OSError | asyncio.TimeoutError):
        return "network"
    return "other"


class BotListener:
    """Channel posts from the Bot API into a sink, by long polling or by webhook.

    Build it with ``from_settings`` (or give it a Bot), then ``await listener.run(stop)``; it
    returns once ``stop`` is set, after emitting buffered albums and (polling) confirming the last
    update so a restart does not replay it. The listener owns the Bot and closes its session.
    """

    def __init__(
        self,
        bot: Bot,
        sink: PostSink,
        *,
        mode: Mode = "polling",
        webhook_secret: str | None = None,
        webhook_host: str = "127.0.0.1",
        webhook_port: int = 8081,
        webhook_path: str = "/telegram/webhook",
        webhook_url: str | None = None,
        album_wait: float = constants.BOT_ALBUM_WAIT_SECONDS,
        poll_timeout: int = constants.BOT_POLL_TIMEOUT_SECONDS,
        retry_min: float = constants.BOT_RETRY_MIN_SECONDS,
        retry_max: float = constants.BOT_RETRY_MAX_SECONDS,
        extra_updates: Sequence[str] = (),
        metrics: Metrics | None = None,
    ) -> None:
        if mode == "webhook" and not webhook_secret:
            raise BotListenerError("webhook mode needs TGWATCH_WEBHOOK_SECRET")
        self.bot = bot
        self.mode: Mode = mode
        self.webhook_secret = webhook_secret
        self.webhook_host = webhook_host
        self.webhook_port = webhook_port  # the bound port once the webhook server is up
        self.webhook_path = webhook_path
        self.webhook_url = webhook_url
        self.poll_timeout = poll_timeout
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.metrics = metrics
        self.outage = Outage("bot")
        self.redact = make_redactor(bot.token)
        self.intake = UpdateIntake(sink, album_wait=album_wait)
        self.dispatcher = Dispatcher(intake=self.intake)
        self.started = asyncio.Event()  # set once polling or the webhook server is running
        # Channel posts, plus what routers joined into ``dispatcher`` handle (the subscriber
        # bot's messages and button presses when it shares this listener's token).
        self.allowed_updates = [*constants.BOT_ALLOWED_UPDATES, *extra_updates]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sink: PostSink,
        *,
        mode: Mode | None = None,
        webhook_url: str | None = None,
        **options: Any,
    ) -> BotListener:
        """A listener on the configured Bot API server. ``mode`` defaults to webhook when
        TGWATCH_WEBHOOK_SECRET is set, polling otherwise; ``webhook_url`` is the public URL
        given to setWebhook (default: the local address, right for a self-hosted Bot API)."""
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        return cls(
            build_bot(settings),
            sink,
            mode=mode or ("webhook" if secret else "polling"),
            webhook_secret=secret,
            webhook_host=settings.webhook_host,
            webhook_port=settings.webhook_port,
            webhook_path=settings.webhook_path,
            webhook_url=webhook_url,
            **options,
        )

    @property
    def stats(self) -> ListenerStats:
        return self.intake.stats

    async def run(self, stop: asyncio.Event) -> None:
        log.info("bot_listener_started", mode=self.mode)
        try:
            if self.mode == "webhook":
                await self._serve_webhook(stop)
            else:
                await self._poll(stop)
        finally:
            try:
                await self.intake.close()
            finally:
                await self.bot.session.close()
            log.info("bot_listener_stopped", mode=self.mode, **vars(self.stats))

    # --- long polling ------------------------------------------------------------------------
    async def _poll(self, stop: asyncio.Event) -> None:
        offset: int | None = None
        confirmed = True
        webhook_cleared = False
        failures = 0
        allowed = list(self.allowed_updates)
        while not stop.is_set():
            try:
                if not webhook_cleared:
                    # getUpdates is refused while a webhook is set (e.g. by an earlier run).
                    await self._until_stop(self.bot(DeleteWebhook()), stop)
                    webhook_cleared = True
                    self.started.set()
                method = GetRawUpdates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=allowed
                )
                request = self.bot(method, request_timeout=self.poll_timeout + 10)
                updates = await self._until_stop(request, stop)
                confirmed = True
                for raw in updates:
                    await self._process(raw)
                    update_id = raw.get("update_id") if isinstance(raw, dict) else None
                    if isinstance(update_id, int):
                        offset, confirmed = update_id + 1, False
                failures = 0
                self.outage.recovered()
            except _StoppedError:
                break
            except TelegramUnauthorizedError:
                raise BotListenerError("the Bot API refused the token (401 Unauthorized)") from None
            except redis.RedisError as exc:
                # The queue is away: the update is not confirmed, so it comes again once Redis
                # is back (the outage is logged once).
                if await wait_or_stop(stop, self.outage.failed(exc)):
                    break
            except Exception as exc:
                failures += 1
                delay = backoff(failures, self.retry_min, self.retry_max)
                if isinstance(exc, TelegramRetryAfter):
                    delay = bounded_delay(float(exc.retry_after))
                if self.metrics is not None:
                    self.metrics.source_error(SOURCE, poll_error_code(exc))
                log.warning(
                    "bot_poll_failed",
                    error=type(exc).__name__,
                    detail=self.redact(str(exc)),
                    failures=failures,
                    retry_in=delay,
                )
                if await wait_or_stop(stop, delay):
                    break
        if offset is not None and not confirmed:
            await self._confirm(offset)

    async def _process(self, raw: object) -> None:
        if not isinstance(raw, dict):
            await self.intake.reject(raw, "update is not an object")
            return
        if is_channel_update(raw):
            await self.intake.handle(raw)
            return
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            await self.intake.reject(raw, _validation_reason(exc))
            return
        await self.dispatcher.feed_update(self.bot, update)

    async def _confirm(self, offset: int) -> None:
        """Tell the Bot API every update below ``offset`` is handled (bounded; best effort)."""
        try:
            method = GetRawUpdates(offset=offset, limit=1, timeout=0)
            await asyncio.wait_for(self.bot(method), constants.BOT_CONFIRM_TIMEOUT_SECONDS)
        except Exception as exc:
            # Unconfirmed updates come again after a restart; the sink drops the duplicates.
            log.warning(
                "bot_confirm_failed", error=type(exc).__name__, detail=self.redact(str(exc))
            )

    @staticmethod
    async def _until_stop(call: Awaitable[T], stop: asyncio.Event) -> T:
        """Await ``call`` unless ``stop`` is set first (then cancel it and raise _StoppedError)."""
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise _StoppedError

    # --- webhook -----------------------------------------------------------------------------
    async def _serve_webhook(self, stop: asyncio.Event) -> None:
        assert self.webhook_secret is not None  # checked in __init__
        app = web.Application()
        handler = _WebhookHandler(self.dispatcher, self.bot, self.webhook_secret, self.intake)
        app.router.add_post(self.webhook_path, handler.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.webhook_host, self.webhook_port)
            await site.start()
            addresses = runner.addresses
            if addresses:
                self.webhook_port = int(addresses[0][1])
            log.info(
                "bot_webhook_listening",
                host=self.webhook_host,
                port=self.webhook_port,
                path=self.webhook_path,
            )
            self.started.set()
            await self._set_webhook(stop)
            await stop.wait()
        finally:
            await runner.cleanup()

    async def _set_webhook(self, stop: asyncio.Event) -> None:
        """Register the webhook with its secret, retrying until it works or the listener stops.

        The webhook stays set on stop: Telegram keeps the updates and delivers them on return.
        """
        url = (
            self.webhook_url or f"http://{self.webhook_host}:{self.webhook_port}{self.webhook_path}"
        )
        method = SetWebhook(
            url=url,
            secret_token=self.webhook_secret,
            allowed_updates=list(self.allowed_updates),
        )
        failures = 0
        while True:
            try:
                await self._until_stop(self.bot(method), stop)
            except _StoppedError:
                return
            except TelegramUnauthorizedError:
                raise BotListenerError("the Bot API refused the token (401 Unauthorized)") from None
            except redis.RedisError as exc:
                # The queue is away: the update is not confirmed, so it comes again once Redis
                # is back (the outage is logged once).
                if await wait_or_stop(stop, self.outage.failed(exc)):
                    break
            except Exception as exc:
                failures += 1
                delay = min(self.retry_max, self.retry_min * 2 ** (failures - 1))
                log.warning(
                    "bot_set_webhook_failed",
                    error=type(exc).__name__,
                    detail=self.redact(str(exc)),
                    retry_in=delay,
                )
                if await wait_or_stop(stop, delay):
                    return
            else:
                log.info("bot_webhook_set", url=url)
                return
