"""A local Bot API server that replays an update dump, so a real bot listener can read it.

The quick-start demo uses it to send the bundled sample channel through the same aiogram
listener that reads a live bot (real HTTP, long polling, offsets), and users can point a
listener at it to rehearse a setup offline: ``TGWATCH_TELEGRAM_API_URL=<its url>``. It answers
``getMe``, ``deleteWebhook``, ``getWebhookInfo`` and ``getUpdates`` (with ``offset``, ``limit``
and a short ``timeout``), says when every update has been confirmed, and keeps the messages
sent to it with ``sendMessage`` (a local chat for alerts).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

# A replay token is random per run: the listener needs one, and no real token is involved.
REPLAY_BOT_ID = 1


class ReplayBotAPI:
    """Serves ``updates`` through getUpdates on 127.0.0.1; ``drained`` is set once the listener
    has confirmed (by asking for a higher offset) the last of them."""

    def __init__(self, updates: list[dict[str, Any]]) -> None:
        self.updates = sorted(updates, key=lambda update: int(update.get("update_id", 0)))
        self.token = f"{REPLAY_BOT_ID}:{secrets.token_urlsafe(24)}"
        self.drained = asyncio.Event()
        self.sent: list[dict[str, Any]] = []  # messages bots sent through this server
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        if not self.updates:
            self.drained.set()

    @classmethod
    def from_file(cls, path: Path) -> ReplayBotAPI:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("result", [data])
        return cls([item for item in data if isinstance(item, dict)])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(
                    {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                )
        method = request.match_info["method"].lower()
        result: Any
        if method == "getme":
            result = {"id": REPLAY_BOT_ID, "is_bot": True, "first_name": "tgwatch replay",
                      "username": "tgwatch_replay_bot"}  # fmt: skip
        elif method in {"deletewebhook", "setmycommands"}:
            result = True
        elif method == "getwebhookinfo":
            result = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        elif method == "getupdates":
            result = await self._get_updates(params)
        elif method == "sendmessage":
            # A local chat: keeps what was sent, so the demo can show alerts arriving.
            self.sent.append(params)
            chat = {"id": int(params.get("chat_id") or 0), "type": "private"}
            result = {"message_id": len(self.sent), "date": 0, "chat": chat}
        else:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        pending = [u for u in self.updates if int(u.get("update_id", 0)) >= offset]
        if offset and not pending:
            self.drained.set()
        if not pending:
            # A short long-poll: the listener waits like it would on Telegram, then asks again.
            await asyncio.sleep(min(float(params.get("timeout") or 0), 0.2))
        return pending[:limit]
