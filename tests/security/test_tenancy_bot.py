"""Finding 4 through the bot: two chats try every command and button on each other's watches,
and a chat an API tenant delivers to (after it agreed) cannot pause, mute or delete the
tenant's subscription — only stop receiving it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from service.bot.access import BotAccess
from service.bot.app import build_dispatcher, run_bot
from service.core.render import alert_keyboard
from service.store.subscribers import StoredSubscription, SubscriberStore
from service.telegram import make_bot
from tests.fakes.botapi import FakeBotAPI
from tests.security.conftest import hook

X, Y = 5001, 5002
GROUP, GROUP_ADMIN, GROUP_MEMBER = -100777, 6001, 6002
_ids = itertools.count(1)


@dataclass
class Chats:
    api: FakeBotAPI
    client: redis.Redis
    store: SubscriberStore

    async def send(self, text: str, chat: int, user: int | None = None) -> str:
        """A message from ``user`` (the chat itself for a private chat); the bot's reply."""
        before = len(self.api.sent)
        update_id = next(_ids)
        kind = "private" if chat > 0 else "supergroup"
        chat_data: dict[str, Any] = {"id": chat, "type": kind}
        chat_data.update({"first_name": "U"} if kind == "private" else {"title": "G"})
        self.api.add_updates(
            {
                "update_id": update_id,
                "message": {
                    "message_id": update_id,
                    "date": int(time.time()),
                    "chat": chat_data,
                    "from": {"id": user or chat, "is_bot": False, "first_name": "U"},
                    "text": text,
                    "entities": [
                        {
                            "type": "bot_command",
                            "offset": 0,
                            "length": len(text.split(maxsplit=1)[0]),
                        }
                    ],
                },
            }
        )
        deadline = time.monotonic() + 10
        while len(self.api.sent) <= before:
            assert time.monotonic() < deadline, "the bot did not reply"
            await asyncio.sleep(0.02)
        reply = self.api.sent[before]
        assert reply["chat_id"] == chat  # the bot answers only the chat that asked
        return str(reply["visible"])

    async def press(self, data: str, chat: int) -> str:
        before = len(self.api.calls("answerCallbackQuery"))
        update_id = next(_ids)
        self.api.add_updates(
            {
                "update_id": update_id,
                "callback_query": {
                    "id": str(update_id),
                    "from": {"id": chat, "is_bot": False, "first_name": "U"},
                    "chat_instance": "1",
                    "data": data,
                    "message": {
                        "message_id": 1,
                        "date": int(time.time()),
                        "text": "alert",
                        "chat": {"id": chat, "type": "private", "first_name": "U"},
                    },
                },
            }
        )
        deadline = time.monotonic() + 10
        while len(self.api.calls("answerCallbackQuery")) <= before:
            assert time.monotonic() < deadline, "the callback was not answered"
            await asyncio.sleep(0.02)
        return str(self.api.calls("answerCallbackQuery")[before].get("text", ""))


@pytest.fixture
async def chats(fake_botapi: FakeBotAPI, redis_client: redis.Redis) -> AsyncIterator[Chats]:
    fake_botapi.enforce_limits = False
    fake_botapi.chat_admins = {GROUP: {GROUP_ADMIN}}
    dispatcher = build_dispatcher(redis_client, BotAccess())
    bot = make_bot(fake_botapi.token, fake_botapi.base_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(bot, dispatcher, stop, polling_timeout=1))
    yield Chats(fake_botapi, redis_client, SubscriberStore(redis_client))
    stop.set()
    await asyncio.wait_for(task, 10)


def _callbacks(sub_id: str) -> tuple[str, str]:
    keyboard = alert_keyboard(sub_id)
    assert keyboard is not None
    mute, unwatch = (button["callback_data"] for button in keyboard["inline_keyboard"][0])
    return mute, unwatch


async def test_one_chat_cannot_touch_another_chat_s_watch(chats: Chats) -> None:
    await chats.send("/watch ceasefire", X)
    [sub] = chats.store.subscriptions(f"tg:{X}")
    assert "No watches" in await chats.send("/list", Y)
    for command in (f"/unwatch {sub.id}", f"/pause {sub.id}", f"/resume {sub.id}"):
        assert "No watch" in await chats.send(command, Y)
    assert "Nothing to change" in await chats.send("/pause all", Y)
    mute, unwatch = _callbacks(sub.id)
    assert "no longer exists" in await chats.press(mute, Y)
    assert "no longer exists" in await chats.press(unwatch, Y)
    after = chats.store.require(sub.id)
    assert not after.paused and not after.muted() and after.targets == ({"telegram": X},)


async def test_a_tenant_s_chat_stops_receiving_but_cannot_pause_mute_or_delete(
    chats: Chats,
) -> None:
    tenant = chats.store.create(
        StoredSubscription("plan~t", "lavrov", "Plan", ({"telegram": Y}, hook()), owner="api:alpha")
    )
    assert "No watch" in await chats.send(f"/pause {tenant.id}", Y)
    mute, _unwatch = _callbacks(tenant.id)
    assert "not yours" in await chats.press(mute, Y)
    assert not chats.store.require(tenant.id).muted()
    assert "no longer" in (await chats.send(f"/unwatch {tenant.id}", Y)).lower()
    kept = chats.store.require(tenant.id)
    assert kept.targets == (hook(),) and not kept.paused  # the webhook goes on


async def test_link_codes_are_one_time_and_group_links_need_an_admin(chats: Chats) -> None:
    from service.store.links import ChatLinks

    links = ChatLinks(chats.client)
    code, _ = links.new_code("api:alpha")
    assert "admins" in await chats.send(f"/link {code}", GROUP, GROUP_MEMBER)
    assert links.chats("api:alpha") == []
    assert "alpha" in await chats.send(f"/link {code}", GROUP, GROUP_ADMIN)
    assert links.chats("api:alpha") == [GROUP]
    assert "not valid" in await chats.send(f"/link {code}", X)  # used up
    assert "not valid" in await chats.send("/link nonsense", X)
    assert links.chats("api:alpha") == [GROUP]
    assert "alpha" in await chats.send("/links", GROUP, GROUP_MEMBER)
    assert "admins" in await chats.send("/unlink api:alpha", GROUP, GROUP_MEMBER)
    assert "Unlinked" in await chats.send("/unlink api:alpha", GROUP, GROUP_ADMIN)
    assert links.chats("api:alpha") == []
