"""A local Bot API server on loopback that behaves like Telegram's for what tgwatch uses.

It speaks the Bot API's JSON over HTTP at ``/bot<token>/<method>``: ``getMe``, ``getUpdates``
(long polling with ``offset`` and ``timeout``), ``setWebhook``/``deleteWebhook``/``getWebhookInfo``,
``sendMessage`` (4096-character limit, HTML entity check, 403 for blocked chats, 400 for unknown
chats, Telegram's flood limits answered with 429 and ``retry_after``), ``editMessageText``,
``answerCallbackQuery``. Tests can queue updates, inject failures and read what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web

TOKEN = "123456:TEST-token-not-a-real-one"
MESSAGE_LIMIT = 4096
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                "tg-spoiler", "span", "blockquote", "tg-emoji"}  # fmt: skip


class _EntityCheck(HTMLParser):
    """Telegram's HTML parse mode: only known tags, balanced, entities well formed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f'can\'t find end tag corresponding to start tag "{tag}"'
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)


def check_html(text: str) -> tuple[str | None, str]:
    """Return (error, visible text) for a message sent with parse_mode=HTML."""
    parser = _EntityCheck()
    parser.feed(text)
    parser.close()
    if parser.error is None and parser.stack:
        parser.error = f'can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    return parser.error, "".join(parser.text_parts)


class BotApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass
class FakeBotAPI:
    """State and behaviour of the fake server. Start it with ``start()``; ``base_url`` is then
    what aiogram's ``TelegramAPIServer.from_base(base_url)`` takes."""

    token: str = TOKEN
    enforce_limits: bool = True
    per_chat_interval: float = 1.0
    group_per_minute: int = 20
    global_per_second: int = 30
    blocked_chats: set[int] = field(default_factory=set)
    known_chats: set[int] | None = None  # None: every chat exists
    chat_admins: dict[int, set[int]] = field(default_factory=dict)  # getChatMember's admins
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    too_many_requests: int = 0  # how many 429s were answered
    webhook: dict[str, Any] | None = None
    _failures: deque[tuple[str, BotApiError]] = field(default_factory=deque)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _chat_last: dict[int, float] = field(default_factory=dict)
    _group_times: dict[int, deque[float]] = field(default_factory=dict)
    _global_times: deque[float] = field(default_factory=deque)
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # --- test controls -------------------------------------------------------------------------
    def add_updates(self, *updates: dict[str, Any]) -> None:
        self.updates.extend(updates)
        self._new_update.set()

    def fail_next(
        self, method: str, code: int, description: str, retry_after: int | None = None
    ) -> None:
        """Answer the next call of ``method`` with an error (e.g. 429 with retry_after)."""
        self._failures.append((method, BotApiError(code, description, retry_after)))

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == method]

    # --- server --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        # Wake held getUpdates calls so shutdown does not wait out their long-poll timeout.
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                params.update({key: value for key, value in form.items() if isinstance(value, str)})
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(BotApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        params = await self._params(request)
        self.requests.append((method, params))
        for index, (name, failure) in enumerate(self._failures):
            if name.lower() == method.lower():
                del self._failures[index]
                if failure.code == 429:
                    self.too_many_requests += 1
                return self._error(failure)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return self._error(BotApiError(404, "Not Found"))
        try:
            result = await handler(params)
        except BotApiError as error:
            if error.code == 429:
                self.too_many_requests += 1
            return self._error(error)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(error: BotApiError) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": error.code,
            "description": error.description,
        }
        if error.retry_after is not None:
            body["parameters"] = {"retry_after": error.retry_after}
        return web.json_response(body, status=error.code)

    # --- methods -------------------------------------------------------------------------------
    async def _m_getme(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": 123456,
            "is_bot": True,
            "first_name": "tgwatch test",
            "username": "tgwatch_test_bot",
        }

    async def _m_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), 1.0)
        if offset:
            # Like Telegram: asking for offset N confirms every update below N.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return self.updates[:limit]

    async def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token")}
        return True

    async def _m_deletewebhook(self, _params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    async def _m_getwebhookinfo(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": 0}  # fmt: skip

    def _check_chat(self, params: dict[str, Any]) -> int:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            raise BotApiError(400, "Bad Request: chat_id is empty") from None
        if chat_id in self.blocked_chats:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        if self.known_chats is not None and chat_id not in self.known_chats:
            raise BotApiError(400, "Bad Request: chat not found")
        return chat_id

    def _check_limits(self, chat_id: int) -> None:
        if not self.enforce_limits:
            return
        now = time.monotonic()
        while self._global_times and now - self._global_times[0] >= 1.0:
            self._global_times.popleft()
        if len(self._global_times) >= self.global_per_second:
            raise BotApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        last = self._chat_last.get(chat_id)
        # Telegram tolerates short bursts; the fake is strict with a small clock allowance.
        if last is not None and now - last < self.per_chat_interval * 0.9:
            raise BotApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        if chat_id < 0:
            times = self._group_times.setdefault(chat_id, deque())
            while times and now - times[0] >= 60.0:
                times.popleft()
            if len(times) >= self.group_per_minute:
                wait = int(60 - (now - times[0])) + 1
                raise BotApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            times.append(now)
        self._chat_last[chat_id] = now
        self._global_times.append(now)

    def _check_text(self, params: dict[str, Any]) -> str:
        text = str(params.get("text") or "")
        visible = text
        if str(params.get("parse_mode") or "").upper() == "HTML":
            error, visible = check_html(text)
            if error is not None:
                raise BotApiError(400, f"Bad Request: can't parse entities: {error}")
        if not visible.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(visible) > MESSAGE_LIMIT:
            raise BotApiError(400, "Bad Request: message is too long")
        return visible

    async def _m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params)
        visible = self._check_text(params)
        self._check_limits(chat_id)
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group" if chat_id < 0 else "private"},
            "text": visible,
        }
        self.sent.append({"chat_id": chat_id, "text": params.get("text"), "visible": visible,
                          "parse_mode": params.get("parse_mode"), "reply_markup": markup,
                          "message_id": message["message_id"]})  # fmt: skip
        return message

    async def _m_editmessagetext(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params)
        visible = self._check_text(params)
        return {"message_id": int(params.get("message_id") or 0), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"}, "text": visible}  # fmt: skip

    async def _m_getchatmember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat, user = int(params["chat_id"]), int(params["user_id"])
        person = {"id": user, "is_bot": False, "first_name": "U"}
        if user in self.chat_admins.get(chat, set()):
            return {"status": "creator", "user": person, "is_anonymous": False}
        return {"status": "member", "user": person}

    async def _m_answercallbackquery(self, _params: dict[str, Any]) -> bool:
        return True

    async def _m_setmycommands(self, _params: dict[str, Any]) -> bool:
        return True


@pytest.fixture
async def fake_botapi() -> AsyncIterator[FakeBotAPI]:
    """A started fake Bot API server; ``fake_botapi.base_url`` and ``fake_botapi.token``."""
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()
