"""One token, one reader: the bot listener of `tgwatch listen` reads channel posts and also
answers subscribers' commands (Telegram refuses a second getUpdates consumer)."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis

from service.config import load_settings
from service.metrics import Metrics
from service.queue import Enqueuer
from service.runtime import build_listeners
from service.sources.bot import BotListener
from tests.fakes.botapi import FakeBotAPI

USER = 777


async def test_bot_listener_reads_posts_and_answers_commands(
    redis_url: str,
    redis_client: redis.Redis,
    fake_botapi: FakeBotAPI,
    fixtures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TGWATCH_BOT_ALLOWED", str(USER))
    settings = load_settings(
        _env_file=None,
        redis_url=redis_url,
        telegram_token=fake_botapi.token,
        telegram_api_url=fake_botapi.base_url,
    )
    client = redis_client
    sink = Enqueuer(client, batch_size=50, batch_wait=0.05)
    updates = json.loads((fixtures_dir / "mfa_russia_sample.json").read_text(encoding="utf-8"))
    fake_botapi.add_updates(updates[0])
    fake_botapi.add_updates({
        "update_id": updates[-1]["update_id"] + 1,
        "message": {
            "message_id": 1, "date": int(time.time()),
            "chat": {"id": USER, "type": "private", "first_name": "U"},
            "from": {"id": USER, "is_bot": False, "first_name": "U"},
            "text": "/help", "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    })  # fmt: skip
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        listeners = await build_listeners(
            settings, client, redis_url, sink, stack, metrics=Metrics(), sources=frozenset({"bot"})
        )
        (listener,) = [item for item in listeners if isinstance(item, BotListener)]
        assert "message" in listener.allowed_updates
        task = asyncio.create_task(listener.run(stop))
        for _ in range(100):
            if fake_botapi.sent and sink.stats.seen:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
    await sink.close()
    assert sink.stats.enqueued == 1
    assert [m["chat_id"] for m in fake_botapi.sent] == [USER]
    assert "/watch" in fake_botapi.sent[0]["visible"]
