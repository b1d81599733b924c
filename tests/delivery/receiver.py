"""A real webhook receiver on loopback (aiohttp) that verifies every signature it gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.core.signing import SignatureError, verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    answered: bool = True  # False while a held request waits (or if it never got its answer)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """Answers 500 to the first ``fail_first`` requests, then 2xx; 401 to a bad signature.
    ``hold_first`` keeps the first request waiting that many seconds before answering."""

    secrets: list[str]
    fail_first: int = 0
    hold_first: float = 0.0
    status_ok: int = 204
    received: list[Received] = field(default_factory=list)
    got_request: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    got_delivery: asyncio.Event = field(default_factory=asyncio.Event)  # a verified 2xx answer
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self, path: str = "/hook", host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{port}{path}"
        return self.url

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.verified and 200 <= r.status < 300 and r.answered]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            verify(self.secrets, headers, body)
            verified = True
        except SignatureError:
            verified = False
        index = len(self.received)
        if not verified:
            status = 401
        elif index < self.fail_first:
            status = 500
        else:
            status = self.status_ok
        record = Received(headers, body, verified, status)
        self.received.append(record)
        self.got_request.set()
        if index == 0 and self.hold_first:
            record.answered = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.hold_first)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=status)  # the sender is gone: never answered
            record.answered = True
        if verified and 200 <= status < 300:
            self.got_delivery.set()
        return web.Response(status=status)
