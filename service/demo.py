"""The quick-start demo: the bundled sample channel through the whole pipeline, on this machine.

`tgwatch run --demo` (the default with no token and no channels) starts a local Bot API that
replays the bundled sample to the real bot listener and plays a Telegram chat, a local webhook
receiver that verifies every signature, and loads the demo rules with both as targets; then
the listener, the queue and the workers do what they do in production, and the summary shows
the alerts that arrived.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from aiohttp import web

from service.core.rules import parse_rules
from service.core.signing import SignatureError, verify
from service.core.targets import TargetPolicy
from service.sources.replay import ReplayBotAPI
from service.store.rules import RuleStore

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_UPDATES = DATA / "sample" / "mfa_russia_sample.json"
DEMO_RULES = DATA / "demo" / "rules.yaml"
# The chat id the local Telegram plays; any id works.
DEMO_CHAT = 100200300


@dataclass
class DemoReceiver:
    """A webhook endpoint on 127.0.0.1 that checks signatures like a user's receiver would."""

    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(self.secret, dict(request.headers), body)
        except SignatureError:
            self.rejected += 1
            return web.Response(status=401)
        self.received.append(json.loads(body))
        return web.Response(status=204)


@dataclass
class Demo:
    replay: ReplayBotAPI
    receiver: DemoReceiver

    @classmethod
    async def start(cls, connection: redis.Redis) -> Demo:
        replay = ReplayBotAPI.from_file(SAMPLE_UPDATES)
        await replay.start()
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        receiver = DemoReceiver(secret)
        await receiver.start()
        text = (
            DEMO_RULES.read_text(encoding="utf-8")
            .replace("__WEBHOOK_URL__", receiver.url)
            .replace("__WEBHOOK_SECRET__", secret)
            .replace("__CHAT__", str(DEMO_CHAT))
        )
        # The demo's own receiver is on loopback, which its workers are told to allow.
        ruleset = parse_rules(text, str(DEMO_RULES), targets=TargetPolicy(allow_loopback=True))
        RuleStore(connection).replace(ruleset)
        return cls(replay, receiver)

    def worker_env(self) -> dict[str, str]:
        """What the demo's workers need: the local Telegram, loopback webhooks allowed, and a
        per-chat pace fit for a local chat (Telegram's is one message a second)."""
        return {
            "TGWATCH_TELEGRAM_API_URL": self.replay.base_url,
            "TGWATCH_TELEGRAM_TOKEN": self.replay.token,
            "TGWATCH_DELIVERY_ALLOW_LOOPBACK_TARGETS": "true",
            "TGWATCH_DELIVERY_PER_CHAT_INTERVAL": "0.05",
        }

    async def stop(self) -> None:
        await self.receiver.stop()
        await self.replay.stop()

    def report(self) -> list[str]:
        lines = [f"  alerts by webhook: {len(self.receiver.received)} received, signatures "
                 f"verified ({self.receiver.rejected} refused)"]  # fmt: skip
        for payload in self.receiver.received[:6]:
            sub = payload.get("subscription", {})
            post = payload.get("post", {})
            lines.append(f"    [{sub.get('id')}] {post.get('link')}")
        chat = [m for m in self.replay.sent if str(m.get("chat_id")) == str(DEMO_CHAT)]
        lines.append(f"  alerts in the Telegram chat: {len(chat)} messages")
        for message in chat[:6]:
            text_lines = _strip_tags(str(message.get("text", ""))).splitlines()
            lines.append(f"    {' | '.join(line for line in text_lines[:3] if line)[:110]}")
        return lines


def _strip_tags(html: str) -> str:
    from html import unescape
    from re import sub

    return unescape(sub(r"<[^>]+>", "", html))
