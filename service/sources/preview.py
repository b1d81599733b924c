"""The web preview source: polls ``t.me/s/<channel>`` pages and hands new and edited posts over.

Per channel, Redis keeps the watermark (highest message id seen) and the text hash of every
recent post (``store.channels``). A poll reads the newest page; a post whose hash is new or
changed goes to the sink (an edit is a changed hash). When the newest page starts above
watermark + 1, older pages are read with ``?before=`` until the gap is covered, at most
``constants.PREVIEW_MAX_GAP_PAGES`` of them. The first poll of a channel reads the newest page
plus ``backfill_pages`` older ones.

Failures (429, 5xx, network, a redirect for an unknown channel, a page that is not a preview
page) are recorded in the channel's health and delay its next poll exponentially from its
interval up to a cap, never sooner than a Retry-After; other channels go on regardless.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
import structlog

from service import constants
from service.config import Settings
from service.core.formats.preview import PreviewPage, parse_preview
from service.core.formats.result import FormatError, Rejected
from service.core.post import Post
from service.core.retry import backoff, bounded_delay, parse_retry_after
from service.metrics import Metrics
from service.redis import Outage
from service.sources.base import PostSink
from service.store.channels import ChannelStore

log = structlog.get_logger(__name__)

SOURCE = "preview"
# Rejections already handed to the sink, per channel: a malformed block stays on the newest page
# for many polls and is set aside once, not once a minute. Forgotten past this many.
_REPORTED_MAX = 1000


def backoff_delay(
    failures: int,
    interval: float,
    retry_after: float | None = None,
    cap: float = constants.PREVIEW_BACKOFF_MAX_SECONDS,
) -> float:
    """Seconds until the next poll after ``failures`` consecutive failures (1 = the first).

    Doubles from the channel's interval up to ``cap``; a Retry-After is honoured even above the
    cap, up to constants.PREVIEW_RETRY_AFTER_MAX_SECONDS.
    """
    delay = backoff(failures, interval, cap)
    if retry_after is not None:
        delay = max(delay, bounded_delay(retry_after, constants.PREVIEW_RETRY_AFTER_MAX_SECONDS))
    return delay


def build_http_client(concurrency: int = constants.PREVIEW_MAX_CONCURRENCY) -> httpx.AsyncClient:
    """The HTTP client a poller needs: no redirects followed, per-request timeouts, a small pool."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        follow_redirects=False, timeout=constants.PREVIEW_TIMEOUT_SECONDS, limits=limits
    )


# Readable poll failure reasons → bounded metric labels.
ERROR_CODES = (
    ("network", "network"),
    ("unknown channel", "unknown_channel"),
    ("page larger", "too_large"),
    ("not a preview page", "parse"),
)


def error_code(reason: str) -> str:
    """A short, bounded label for a poll failure (metrics), from its readable reason."""
    if reason.startswith("HTTP 429"):
        return "http_429"
    if reason.startswith("HTTP 5"):
        return "http_5xx"
    if reason.startswith("HTTP"):
        return "http_other"
    for prefix, code in ERROR_CODES:
        if reason.startswith(prefix):
            return code
    return "other"


class PollError(Exception):
    """One page could not be read; ``retry_after`` when the server asked for a pause."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class PollResult:
    """What one poll of one channel did, and when the channel is polled next."""

    channel: str
    ok: bool
    delay: float
    new: int = 0
    edited: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: int = 0
    pages: int = 0
    watermark: int | None = None
    error: str | None = None
    retry_after: float | None = None
    gap_unfilled: bool = False


@dataclass
class _Fetched:
    """The pages one poll read, and how the reading ended."""

    pages: list[PreviewPage] = field(default_factory=list)
    error: PollError | None = None
    cursor: int | None = None  # the ?before= value of the next older page, if any
    gap_unfilled: bool = False
    interrupted: bool = False


def _ids(post: Post) -> Iterable[int]:
    yield post.message_id
    yield from post.album_items


class PreviewPoller:
    """Polls the web preview of ``channels`` (names, or a mapping name → interval in seconds).

    ``poll_once(channel)`` runs one poll and returns a PollResult (tests call it directly);
    ``run(stop)`` polls every channel on its own schedule until ``stop`` is set, finishing any
    poll in progress. ``clock`` (wall time, seconds) and ``sleep`` are injectable, as is ``rng``
    for the jitter. The HTTP client is the caller's: it is not closed here.
    """

    def __init__(
        self,
        channels: Iterable[str] | Mapping[str, float],
        sink: PostSink,
        store: ChannelStore,
        http: httpx.AsyncClient,
        *,
        base_url: str = constants.TELEGRAM_WEB_URL,
        interval: float = constants.PREVIEW_DEFAULT_INTERVAL_SECONDS,
        backfill_pages: int = 0,
        concurrency: int = constants.PREVIEW_MAX_CONCURRENCY,
        jitter: float = constants.PREVIEW_JITTER_FRACTION,
        max_gap_pages: int = constants.PREVIEW_MAX_GAP_PAGES,
        max_page_bytes: int = constants.PREVIEW_MAX_PAGE_BYTES,
        timeout: float = constants.PREVIEW_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        channel_source: Callable[[], Awaitable[Iterable[str]]] | None = None,
        refresh_every: float = constants.PREVIEW_CHANNELS_REFRESH_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.channel_source = channel_source
        self.refresh_every = refresh_every
        if isinstance(channels, Mapping):
            self.intervals = {name.lstrip("@"): float(every) for name, every in channels.items()}
        else:
            self.intervals = {name.lstrip("@"): interval for name in channels}
        self.sink = sink
        self.store = store
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.backfill_pages = backfill_pages
        self.jitter = jitter
        self.max_gap_pages = max_gap_pages
        self.max_page_bytes = max_page_bytes
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.default_interval = interval
        self._semaphore = asyncio.Semaphore(concurrency)
        self._reported: dict[str, set[str]] = {}
        self._stopping = asyncio.Event()
        self.outage = Outage("preview")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sink: PostSink,
        store: ChannelStore,
        http: httpx.AsyncClient,
        **options: Any,
    ) -> PreviewPoller:
        """A poller for TGWATCH_CHANNELS as configured (URL, interval, backfill, concurrency)."""
        return cls(
            settings.channels,
            sink,
            store,
            http,
            base_url=settings.preview_url,
            interval=settings.preview_interval,
            backfill_pages=settings.preview_backfill_pages,
            concurrency=settings.preview_concurrency,
            **options,
        )

    @property
    def channels(self) -> list[str]:
        return list(self.intervals)

    # --- one poll ------------------------------------------------------------------------------
    async def poll_once(self, channel: str) -> PollResult:
        """Poll ``channel`` once: fetch, emit new and edited posts, record watermark and health."""
        watermark = await self.store.watermark(channel)
        if self.metrics is not None:
            with self.metrics.poll_timer(channel):
                fetched = await self._collect(channel, watermark)
        else:
            fetched = await self._collect(channel, watermark)
        posts = self._unique(fetched.pages)
        result = PollResult(
            channel=channel, ok=fetched.error is None, delay=0.0, pages=len(fetched.pages)
        )
        for page in fetched.pages:
            result.rejected += await self._reject_blocks(channel, page.rejected)
        hashes = await self._emit(channel, posts, result)
        # After a failed or interrupted gap fill the old watermark stays, so the next poll pages
        # back over the same gap again (posts already emitted are skipped by their hashes). A gap
        # longer than the page budget is given up (logged): one huge gap must not stall a channel.
        newest = max((i for post in posts for i in _ids(post)), default=None)
        complete = fetched.error is None and not fetched.interrupted
        await self.store.record_seen(channel, hashes, newest if complete else None)
        result.watermark = await self.store.watermark(channel)
        if fetched.error is not None:
            await self._failed(result, fetched.error)
        else:
            if fetched.gap_unfilled:
                result.gap_unfilled = True
                log.warning(
                    "preview_gap_unfilled",
                    channel=channel,
                    after=watermark,
                    before=fetched.cursor,
                    pages=self.max_gap_pages,
                )
            await self._succeeded(result, fetched.pages[0])
        return result

    async def _collect(self, channel: str, watermark: int | None) -> _Fetched:
        """The newest page, then older ones while ids are missing (or to backfill a first poll)."""
        fetched = _Fetched()
        try:
            fetched.pages.append(await self._fetch(channel, None))
            fetched.cursor = fetched.pages[0].before if fetched.pages[0].posts else None
            budget = self.backfill_pages if watermark is None else self.max_gap_pages
            while fetched.cursor is not None and (
                watermark is None or fetched.cursor > watermark + 1
            ):
                if self._stopping.is_set():
                    fetched.interrupted = True
                    break
                if budget <= 0:
                    fetched.gap_unfilled = watermark is not None
                    break
                page = await self._fetch(channel, fetched.cursor)
                fetched.pages.append(page)
                budget -= 1
                fetched.cursor = page.before if page.posts else None
        except PollError as exc:
            fetched.error = exc
        return fetched

    async def _failed(self, result: PollResult, error: PollError) -> None:
        """Record the failure and schedule the next poll with backoff."""
        now = self.clock()
        result.error, result.retry_after = error.reason, error.retry_after
        failures = await self.store.record_error(
            result.channel, at=now, error=error.reason, source=SOURCE
        )
        if self.metrics is not None:
            self.metrics.source_error(SOURCE, error_code(error.reason))
        interval = self.intervals.get(result.channel, self.default_interval)
        result.delay = backoff_delay(failures, interval, error.retry_after)
        await self.store.set_next_poll(result.channel, now + result.delay)
        log.warning(
            "preview_poll_failed",
            channel=result.channel,
            error=error.reason,
            failures=failures,
            retry_in=round(result.delay, 1),
            new=result.new,
            edited=result.edited,
        )

    async def _succeeded(self, result: PollResult, newest_page: PreviewPage) -> None:
        """Record the success (lag from the newest post) and schedule the next poll."""
        now = self.clock()
        interval = self.intervals.get(result.channel, self.default_interval)
        result.delay = interval * (1 + self.jitter * self.rng.uniform(-1.0, 1.0))
        newest_date = max((post.date.timestamp() for post in newest_page.posts), default=None)
        if self.metrics is not None and newest_date is not None:
            newest = datetime.fromtimestamp(newest_date, UTC)
            self.metrics.set_source_lag(result.channel, newest, datetime.fromtimestamp(now, UTC))
        await self.store.record_success(
            result.channel,
            at=now,
            next_poll=now + result.delay,
            newest_date=newest_date,
            source=SOURCE,
        )
        log.info(
            "preview_polled",
            channel=result.channel,
            new=result.new,
            edited=result.edited,
            pages=result.pages,
            watermark=result.watermark,
        )

    @staticmethod
    def _unique(pages: list[PreviewPage]) -> list[Post]:
        """Posts of all pages, oldest first, each id once (the newer page's copy wins)."""
        by_id: dict[int, Post] = {}
        for page in pages:
            for post in page.posts:
                by_id.setdefault(post.message_id, post)
        return [by_id[key] for key in sorted(by_id)]

    async def _emit(self, channel: str, posts: list[Post], result: PollResult) -> dict[int, str]:
        """Put posts whose text hash is new or changed; returns the hashes to record."""
        known = await self.store.hashes(channel, [post.message_id for post in posts])
        emitted: dict[int, str] = {}
        for post in posts:
            previous = known.get(post.message_id)
            if previous == post.content_hash:
                result.unchanged += 1
                continue
            if await self.sink.put(post):
                if previous is None:
                    result.new += 1
                else:
                    result.edited += 1
            else:
                result.duplicates += 1
            emitted[post.message_id] = post.content_hash
        return emitted

    async def _reject_blocks(self, channel: str, rejected: list[Rejected]) -> int:
        reported = self._reported.setdefault(channel, set())
        if len(reported) > _REPORTED_MAX:
            reported.clear()
        count = 0
        for item in rejected:
            fingerprint = hashlib.sha256(f"{item.reason}\0{item.raw}".encode()).hexdigest()
            if fingerprint in reported:
                continue
            reported.add(fingerprint)
            await self.sink.reject(item)
            count += 1
        return count

    # --- one page ------------------------------------------------------------------------------
    def page_url(self, channel: str, before: int | None) -> str:
        url = f"{self.base_url}/s/{channel}"
        return url if before is None else f"{url}?before={before}"

    async def _fetch(self, channel: str, before: int | None) -> PreviewPage:
        """Fetch and parse one page; PollError for anything that is not a readable page."""
        url = self.page_url(channel, before)
        async with self._semaphore:
            try:
                body, encoding = await self._download(url)
            except httpx.HTTPError as exc:
                raise PollError(f"network error: {type(exc).__name__}") from exc
        html = body.decode(encoding or "utf-8", errors="replace")
        try:
            return parse_preview(html, source_name=url, source=SOURCE)
        except FormatError as exc:
            reason = f"not a preview page: {exc}"
            await self._reject_blocks(channel, [Rejected.of(url, "page", reason, html)])
            raise PollError(reason) from exc

    async def _download(self, url: str) -> tuple[bytes, str | None]:
        request = self.http.stream("GET", url, follow_redirects=False, timeout=self.timeout)
        async with request as response:
            status = response.status_code
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
                raise PollError(f"HTTP {status}", retry_after=retry_after)
            if response.is_redirect:
                raise PollError(f"unknown channel (HTTP {status} redirect)")
            if status != 200:
                raise PollError(f"HTTP {status}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_page_bytes:
                    raise PollError(f"page larger than {self.max_page_bytes} bytes")
            return bytes(body), response.charset_encoding

    # --- the service ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll every channel on its own schedule until ``stop`` is set. With a
        ``channel_source`` (channels added from the bot or the API), channels added or removed
        there are picked up every ``refresh_every`` seconds without a restart."""
        log.info("preview_poller_started", channels=self.channels)
        watcher = asyncio.create_task(self._watch(stop))
        tasks = {
            name: asyncio.create_task(self._channel_loop(name, stop)) for name in self.intervals
        }
        refresher = None
        if self.channel_source is not None:
            refresher = asyncio.create_task(self._refresh(stop, tasks))
        try:
            if refresher is None:
                await asyncio.gather(*tasks.values())
            else:
                await stop.wait()
                await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            extra = [watcher] if refresher is None else [watcher, refresher]
            for task in (*tasks.values(), *extra):
                task.cancel()
            await asyncio.gather(*tasks.values(), *extra, return_exceptions=True)
            log.info("preview_poller_stopped")

    async def _refresh(self, stop: asyncio.Event, tasks: dict[str, asyncio.Task[None]]) -> None:
        """Start loops for channels the source added; stop those of channels it removed."""
        assert self.channel_source is not None
        static = set(self.intervals)
        dynamic: set[str] = set()
        while True:
            try:
                wanted = {name.lstrip("@").lower() for name in await self.channel_source()}
            except Exception as exc:  # Redis away: keep polling what we have
                log.warning("preview_channels_refresh_failed", error=repr(exc))
                wanted = dynamic
            known = {name.lower() for name in static}
            for name in sorted(wanted - dynamic - known):
                self.intervals[name] = self.default_interval
                tasks[name] = asyncio.create_task(self._channel_loop(name, stop))
                log.info("preview_channel_added", channel=name)
            for name in sorted(dynamic - wanted):
                task = tasks.pop(name, None)
                if task is not None:
                    task.cancel()
                self.intervals.pop(name, None)
                log.info("preview_channel_removed", channel=name)
            dynamic = wanted - known
            if await self._wait(stop, self.refresh_every):
                return

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping.set()

    async def _channel_loop(self, channel: str, stop: asyncio.Event) -> None:
        interval = self.intervals[channel]
        # Start channels spread over a fraction of their interval, not all at once.
        delay = interval * self.jitter * self.rng.random()
        while not await self._wait(stop, delay):
            try:
                result = await self.poll_once(channel)
            except redis.RedisError as exc:
                # Redis away: nothing recorded, the watermark not moved; poll again when it is
                # back (the outage is logged once, not once per channel and attempt).
                delay = max(min(interval, self.outage.failed(exc)), 0.1)
            except Exception as exc:
                # A sink or a bug failing: record nothing we cannot, try again later.
                log.error("preview_poll_crashed", channel=channel, error=repr(exc))
                delay = interval
            else:
                self.outage.recovered()
                delay = result.delay

    async def _wait(self, stop: asyncio.Event, delay: float) -> bool:
        """Sleep ``delay`` with the injected sleep; True as soon as ``stop`` is set."""
        if stop.is_set():
            return True
        sleeper = asyncio.ensure_future(self.sleep(max(0.0, delay)))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, stopper):
            task.cancel()
        await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return stop.is_set()
