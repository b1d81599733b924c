"""The account pool of one listener process: which account reads which channel, through leases in
Redis shared by every listener process on every host.

Every round (a third of a lease) the pool:
1. runs the local accounts it can take the account lease of (one process runs an account at a
   time), and stops those marked banned, deactivated or logged out;
2. renews its channel leases (a lease another holder took is lost, its channel dropped);
3. assigns free channels of the watch list to its connected accounts, least loaded first, each up
   to a fair share of the channels over the accounts connected anywhere (up to
   ``channels_per_account`` once a channel stayed free a round), and sheds channels above the fair
   share when another connected account has room, so processes started at different times still
   split the list;
4. hands channels no account can read (every account refused it, every account is full, or none
   took it for a few rounds) to the preview poller when they are public, under a fallback lease
   any account with room takes back.

A process that stops releases its leases at once; one that dies loses them when they run out,
so its channels move to other accounts within a lease plus a round.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog

from service.config import MtprotoSettings
from service.metrics.mtproto import MtprotoMetrics
from service.sources.base import wait_or_stop
from service.sources.mtproto.account import AccountRunner
from service.sources.mtproto.client import MtprotoClient, channel_entry, is_invite
from service.sources.mtproto.tasks import cancel_and_wait
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountRecord, AccountStore
from service.store.leases import FALLBACK_ACCOUNT

log = structlog.get_logger(__name__)

# A channel free for this many rounds with no account taking it (all of them flooded, offline or
# at their fair share) goes to the preview poller meanwhile.
FALLBACK_AFTER_ROUNDS = 3
# A channel free for this many rounds may be taken beyond the fair share (up to the cap).
OVERFLOW_AFTER_ROUNDS = 2
# A channel is shed to another account only after the account held it this many leases: a
# channel shed toward an account that then cannot take it comes back, and must not bounce
# between free and taken every round.
SHED_GRACE_LEASES = 3
# Fallback leases have no cap: the preview poller's own concurrency bounds its load.
FALLBACK_CAP = 10**9
# A stopping account gets this long to flush its albums and disconnect before it is cancelled.
STOP_GRACE_SECONDS = 10.0


def takes_channels(record: AccountRecord, now: float) -> bool:
    """An account that can take channels now: usable, connected, not waiting out a flood wait
    on resolving or joining (its fair share then goes to the others)."""
    joining_flood = record.flood_operation in ("resolve", "join") and record.flood_left(now) > 0
    return record.usable and record.connected and not joining_flood


def process_token() -> str:
    """Who holds a lease: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class AccountPool:
    """Runs the local ``accounts`` (built by ``connect``) over the channels ``watch`` returns."""

    def __init__(
        self,
        accounts: Sequence[str],
        connect: Callable[[str], MtprotoClient],
        *,
        store: AccountStore,
        writer: ChannelWriter,
        settings: MtprotoSettings,
        watch: Callable[[], Awaitable[Iterable[str]]],
        metrics: MtprotoMetrics | None = None,
        token: str | None = None,
        on_stop: Callable[[str, MtprotoClient], object] | None = None,
    ) -> None:
        self.accounts = list(accounts)
        self.connect = connect
        self.store = store
        self.writer = writer
        self.settings = settings
        self.watch = watch
        self.metrics = metrics
        self.token = token or process_token()
        self.on_stop = on_stop
        self.runners: dict[str, AccountRunner] = {}
        self.fallback: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._free_rounds: dict[str, int] = {}
        self._reported: set[str] = set()  # bad entries and account errors already logged
        self._recorded_fallback: set[str] = set()

    # --- what others ask --------------------------------------------------------------------------
    async def fallback_channels(self) -> list[str]:
        """The channels this process polls from their preview (the poller's channel source)."""
        return sorted(self.fallback)

    def ready(self) -> bool:
        """False only when this process runs accounts and none of them is connected."""
        return not self.runners or any(r.connected for r in self.runners.values())

    # --- the service ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        log.info("mtproto_pool_started", accounts=self.accounts, token=self.token)
        try:
            while True:
                try:
                    await self.tick()
                except Exception as exc:  # Redis away: keep what we hold, try again next round
                    log.error("mtproto_round_failed", error=repr(exc))
                if await wait_or_stop(stop, self.settings.tick_seconds):
                    return
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every account and give every lease back, so others take over at once."""
        for event in self._stops.values():
            event.set()
        if self._tasks:
            await asyncio.wait(self._tasks.values(), timeout=STOP_GRACE_SECONDS)
        for name in list(self.runners):
            await self._retire(name)
        await self.writer.drain()
        for entry in list(self.fallback):
            await self.store.release_channel(entry, FALLBACK_ACCOUNT, self.token)
        self.fallback.clear()
        log.info("mtproto_pool_stopped")

    async def tick(self) -> None:
        """One round (see the module docstring)."""
        wanted = self._entries(await self.watch())
        await self._run_accounts()
        await self._renew()
        records = {r.name: r for r in [await self.store.account(n) for n in await self._names()]}
        running = await self.store.running(records)
        now = time.time()
        ready = [n for n in sorted(running) if takes_channels(records[n], now)]
        counts = await self.store.held_counts(ready)
        await self._release_unwanted(set(wanted))
        await self._shed(len(wanted), ready, counts)
        await self._assign(wanted, ready)
        await self._fall_back(wanted, ready, await self.store.held_counts(ready))
        if self.metrics is not None:
            for name, runner in self.runners.items():
                self.metrics.channels(name, len(runner.tracked))
            for name, record in records.items():
                self.metrics.unusable(name, None if record.usable else record.state)

    def _entries(self, raw: Iterable[str]) -> list[str]:
        entries: set[str] = set()
        for item in raw:
            try:
                entries.add(channel_entry(item))
            except ValueError as exc:
                if item not in self._reported:
                    self._reported.add(item)
                    log.warning("mtproto_channel_ignored", channel=item[:60], error=str(exc))
        return sorted(entries)

    async def _names(self) -> list[str]:
        return sorted(set(await self.store.names()) | set(self.accounts))

    # --- accounts ---------------------------------------------------------------------------------
    async def _run_accounts(self) -> None:
        ttl = self.settings.lease_seconds
        for name in self.accounts:
            task = self._tasks.get(name)
            if task is not None and task.done():
                await self._retire(name)
            record = await self.store.account(name)
            if not record.usable:
                if name in self.runners:
                    self._stops[name].set()
                continue
            if name in self.runners:
                if not await self.store.acquire_account(name, self.token, ttl):
                    log.warning("mtproto_account_lease_lost", account=name)
                    self._stops[name].set()
                continue
            if await self.store.acquire_account(name, self.token, ttl):
                await self._start(name, record)

    async def _start(self, name: str, record: AccountRecord) -> None:
        try:
            client = self.connect(name)
        except Exception as exc:  # a missing or undecryptable session: say so once, skip it
            await self.store.release_account(name, self.token)
            await self.store.update(name, last_error=str(exc))
            if name not in self._reported:
                self._reported.add(name)
                log.error("mtproto_account_not_started", account=name, error=str(exc))
            return
        self._reported.discard(name)
        await self.store.register(name)

        def saved(client: MtprotoClient) -> None:
            if self.on_stop is not None:
                self.on_stop(name, client)

        runner = AccountRunner(
            name, self.token, client, writer=self.writer, store=self.store,
            settings=self.settings, metrics=self.metrics, on_stop=saved,
        )  # fmt: skip
        stop = asyncio.Event()
        self.runners[name], self._stops[name] = runner, stop
        self._tasks[name] = asyncio.create_task(runner.run(stop))
        log.info("mtproto_account_started", account=name, state=record.state)

    async def _retire(self, name: str) -> None:
        """Forget a stopped runner; give back its channels and the account."""
        runner = self.runners.pop(name, None)
        self._stops.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None:
            await cancel_and_wait([task])
        if runner is not None:
            for entry in list(runner.tracked):
                await self.store.release_channel(entry, name, self.token)
                runner.drop(entry)
        await self.store.release_account(name, self.token)

    # --- leases -----------------------------------------------------------------------------------
    async def _renew(self) -> None:
        ttl = self.settings.lease_seconds
        for name, runner in self.runners.items():
            for entry in runner.stranded():  # assigned while its flood wait began
                await runner.release(entry)
                log.info("mtproto_channel_handed_back", account=name, channel=entry)
            lost = await self.store.renew_channels(name, self.token, ttl, list(runner.tracked))
            for entry in lost:
                log.warning("mtproto_channel_lease_lost", account=name, channel=entry)
                runner.drop(entry)
        lost = await self.store.renew_channels(FALLBACK_ACCOUNT, self.token, ttl, self.fallback)
        for entry in lost:  # an account took it back
            self._stop_fallback(entry)

    async def _release_unwanted(self, wanted: set[str]) -> None:
        for runner in self.runners.values():
            for entry in [e for e in runner.tracked if e not in wanted]:
                await runner.release(entry)
        for entry in [e for e in self.fallback if e not in wanted]:
            await self.store.release_channel(entry, FALLBACK_ACCOUNT, self.token)
            self._stop_fallback(entry)
        self._free_rounds = {e: n for e, n in self._free_rounds.items() if e in wanted}

    def _fair(self, total: int, ready: Sequence[str]) -> int:
        cap = self.settings.channels_per_account
        return min(cap, max(1, math.ceil(total / max(1, len(ready)))))

    async def _shed(self, total: int, ready: list[str], counts: dict[str, int]) -> None:
        """Give back channels above the fair share while another connected account has room."""
        fair = self._fair(total, ready)
        for name, runner in self.runners.items():
            room = sum(max(0, fair - counts[a]) for a in ready if a != name)
            excess = min(len(runner.tracked) - fair, room)
            if excess <= 0:
                continue
            pending = set(runner.pending())
            settled = time.monotonic() - SHED_GRACE_LEASES * self.settings.lease_seconds
            movable = [e for e in runner.tracked if runner.acquired_at.get(e, 0.0) <= settled]
            order = sorted(movable, key=lambda e: (e not in pending, e), reverse=True)
            excess = min(excess, len(order))
            if excess <= 0:
                continue
            for entry in order[-excess:]:
                await runner.release(entry)
            log.info("mtproto_channels_shed", account=name, channels=excess, fair_share=fair)

    async def _assign(self, wanted: list[str], ready: list[str]) -> None:
        holders = await self.store.holders(wanted)
        fair = self._fair(len(wanted), ready)
        free = [e for e in wanted if holders[e] is None or holders[e] == FALLBACK_ACCOUNT]
        for entry in [e for e in wanted if e not in free]:
            self._free_rounds.pop(entry, None)
        random.shuffle(free)  # processes racing for the same channels collide less
        for entry in free:
            rounds = self._free_rounds.get(entry, 0)
            cap = self.settings.channels_per_account if rounds >= OVERFLOW_AFTER_ROUNDS else fair
            refused = await self.store.refusals(entry)
            eligible = [
                runner for runner in self.runners.values()
                if runner.accepts_new() and runner.name not in refused
                and len(runner.tracked) < cap
            ]  # fmt: skip
            if holders[entry] is None:
                self._free_rounds[entry] = rounds + 1
            if not eligible:
                continue
            runner = min(eligible, key=lambda r: (len(r.tracked), random.random()))
            ttl = self.settings.lease_seconds
            result = await self.store.acquire_channel(entry, runner.name, self.token, ttl, cap)
            if result == 1:
                self._free_rounds.pop(entry, None)
                if entry in self.fallback:
                    self._stop_fallback(entry)
                runner.assign(entry)

    # --- the preview fallback ---------------------------------------------------------------------
    async def _fall_back(self, wanted: list[str], ready: list[str], counts: dict[str, int]) -> None:
        holders = await self.store.holders(wanted)
        done = [
            e for e in self._recorded_fallback if holders.get(e) not in (None, FALLBACK_ACCOUNT)
        ]
        if done:
            await self.store.clear_fallback(done)
            self._recorded_fallback.difference_update(done)
        for entry in wanted:
            if holders[entry] is not None:  # an account reads it, or a preview poller does
                continue
            reason = await self._unreadable(entry, ready, counts)
            if reason is None:
                continue
            polled = False
            if not is_invite(entry) and self.settings.fallback:
                acquired = await self.store.acquire_channel(
                    entry, FALLBACK_ACCOUNT, self.token, self.settings.lease_seconds,
                    FALLBACK_CAP, preempt=False,
                )  # fmt: skip
                polled = acquired == 1
                if polled:
                    self.fallback.add(entry)
                    if self.metrics is not None:
                        self.metrics.source(entry, "preview")
                    log.warning("mtproto_channel_fallback", channel=entry, reason=reason)
            await self.store.set_fallback(entry, reason, polled=polled)
            self._recorded_fallback.add(entry)

    async def _unreadable(self, entry: str, ready: list[str], counts: dict[str, int]) -> str | None:
        """Why no account reads ``entry`` (None: one will, or may soon)."""
        waited = self._free_rounds.get(entry, 0) >= FALLBACK_AFTER_ROUNDS
        if not ready:
            return "no connected account" if waited else None
        refused = await self.store.refusals(entry)
        if set(ready) <= set(refused):
            return "refused: " + ", ".join(sorted({refused[name] for name in ready}))
        if all(counts.get(name, 0) >= self.settings.channels_per_account for name in ready):
            return "every account is full"
        if waited:
            return "no account took it"
        return None

    def _stop_fallback(self, entry: str) -> None:
        self.fallback.discard(entry)
        if self.metrics is not None:
            self.metrics.source(entry, None)
        log.info("mtproto_channel_fallback_ended", channel=entry)
