"""The bot's commands through aiogram's long polling against the local fake Bot API server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from service import constants
from service.bot.access import BotAccess
from service.bot.app import build_dispatcher, run_bot
from service.config import BotSettings
from service.core.model import Enrichment
from service.core.post import Post
from service.core.query.index import RuleIndex
from service.core.render import alert_keyboard
from service.store import watchlist
from service.store.posts import PostStore
from service.store.rules import RuleStore
from service.store.subscribers import StoredSubscription, SubscriberStore
from service.telegram import make_bot
from tests.fakes.botapi import FakeBotAPI

USER = 1001
ADMIN = 1002
STRANGER = 4242
_ids = itertools.count(1)


@dataclass
class BotHarness:
    api: FakeBotAPI
    client: redis.Redis
    store: SubscriberStore

    async def send(self, text: str, user: int = USER, *, expect: bool = True) -> str:
        """Feed a private message from ``user`` and return the bot's reply (visible text)."""
        before = len(self.api.sent)
        update_id = next(_ids)
        command = text.split(maxsplit=1)[0]
        self.api.add_updates(
            {
                "update_id": update_id,
                "message": {
                    "message_id": update_id,
                    "date": int(time.time()),
                    "chat": {"id": user, "type": "private", "first_name": "U"},
                    "from": {"id": user, "is_bot": False, "first_name": "U"},
                    "text": text,
                    "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
                },
            }
        )
        if not expect:
            return ""
        reply = await self.wait_sent(before)
        assert reply["chat_id"] == user
        assert reply["parse_mode"] == "HTML"
        return str(reply["visible"])

    async def wait_sent(self, before: int) -> dict[str, Any]:
        deadline = time.monotonic() + 10.0
        while len(self.api.sent) <= before:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not reply")
            await asyncio.sleep(0.02)
        return self.api.sent[before]

    async def press(self, data: str, user: int = USER) -> dict[str, Any]:
        before = len(self.api.calls("answerCallbackQuery"))
        update_id = next(_ids)
        self.api.add_updates(
            {
                "update_id": update_id,
                "callback_query": {
                    "id": str(update_id),
                    "from": {"id": user, "is_bot": False, "first_name": "U"},
                    "chat_instance": "1",
                    "data": data,
                    "message": {
                        "message_id": 1,
                        "date": int(time.time()),
                        "text": "alert",
                        "chat": {"id": user, "type": "private", "first_name": "U"},
                    },
                },
            }
        )
        deadline = time.monotonic() + 10
        while len(self.api.calls("answerCallbackQuery")) <= before:
            assert time.monotonic() < deadline, "the callback was not answered"
            await asyncio.sleep(0.02)
        return self.api.calls("answerCallbackQuery")[before]


@pytest.fixture
async def bot(fake_botapi: FakeBotAPI, redis_client: redis.Redis) -> AsyncIterator[BotHarness]:
    fake_botapi.enforce_limits = False
    access = BotAccess(frozenset({USER}), frozenset({ADMIN}))
    dispatcher = build_dispatcher(redis_client, access, ["Static_Channel"])
    client = make_bot(fake_botapi.token, fake_botapi.base_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(client, dispatcher, stop, polling_timeout=1))
    yield BotHarness(fake_botapi, redis_client, SubscriberStore(redis_client))
    stop.set()
    await asyncio.wait_for(task, 10)


def _post(channel: str, message_id: int, text: str) -> Post:
    return Post(
        channel=channel,
        message_id=message_id,
        date=datetime.now(UTC),
        text=text,
        channel_title=channel.upper(),
    )


async def test_start_and_help(bot: BotHarness) -> None:
    bot.client.hset(constants.TARGET_DISABLED_PREFIX + f"tg:{USER}", "reason", "blocked")
    reply = await bot.send("/start")
    assert "Welcome" in reply and "/watch" in reply
    assert not bot.client.exists(constants.TARGET_DISABLED_PREFIX + f"tg:{USER}")
    assert "/digest off|15m|1h|daily" in await bot.send("/help")


async def test_watch_reaches_the_rules_storage(bot: BotHarness) -> None:
    version = RuleStore(bot.client).version()
    reply = await bot.send("/watch Лавров AND (санкции OR <sanctions>)")
    assert "Watching" in reply and "Understood as:" in reply
    assert "лавров" in reply and "OR" in reply
    assert RuleStore(bot.client).version() > version
    _, ruleset = RuleStore(bot.client).load()
    [sub] = ruleset.subscriptions
    assert sub.query == "Лавров AND (санкции OR <sanctions>)"
    assert list(sub.notify) == [{"telegram": USER, "owner": f"tg:{USER}"}]
    assert sub.id in reply


async def test_watch_invalid_names_the_position(bot: BotHarness) -> None:
    reply = await bot.send("/watch (ceasefire OR truce")
    assert "unbalanced" in reply and "at position 0" in reply
    reply = await bot.send("/watch ceasefire AND")
    assert "at position 13" in reply and "             ^" in reply
    assert await asyncio.to_thread(bot.store.all) == []
    assert "Usage" in await bot.send("/watch")


async def test_list_unwatch_pause_resume(bot: BotHarness) -> None:
    await bot.send("/watch ceasefire")
    await bot.send("/watch truce")
    subs = bot.store.for_chat(USER)
    assert len(subs) == 2
    listing = await bot.send("/list")
    assert all(sub.id in listing for sub in subs) and "truce" in listing

    first, second = subs
    assert "Paused 1" in await bot.send(f"/pause {first.id}")
    assert bot.store.require(first.id).paused
    _, ruleset = RuleStore(bot.client).load()
    assert {s.id: s.paused for s in ruleset.subscriptions} == {first.id: True, second.id: False}
    assert "paused" in await bot.send("/list")
    assert "Paused 1" in await bot.send("/pause all")
    assert "Resumed 2" in await bot.send("/resume")
    assert not any(sub.paused for sub in bot.store.for_chat(USER))

    assert "Stopped" in await bot.send(f"/unwatch {first.id}")
    assert bot.store.get(first.id) is None
    assert "No watch" in await bot.send(f"/unwatch {first.id}")
    assert "No watch" in await bot.send("/pause nope")


async def test_test_shows_hits_over_stored_posts(bot: BotHarness) -> None:
    posts = PostStore(bot.client)
    posts.store(_post("mfa_russia", 1, "Лавров провёл переговоры о <перемирии>"), Enrichment())
    posts.store(_post("mfa_russia", 2, "Погода в Москве"), Enrichment())
    posts.store(_post("other", 7, "Встреча с Лавровым & партнёрами"), Enrichment())
    reply = await bot.send("/test лавров")
    assert "2 hits in 3 recent posts of 2 channel(s)" in reply
    assert "t.me/mfa_russia/1" in reply and "t.me/other/7" in reply
    assert "<перемирии>" in reply and "& партнёрами" in reply
    html = bot.api.sent[-1]["text"]
    assert "<b>Лавров</b>" in html and "&lt;перемирии&gt;" in html
    assert "0 hits" in await bot.send("/test погодка")
    assert "position" in await bot.send("/test (")


async def test_digest_and_quiet(bot: BotHarness) -> None:
    await bot.send("/watch ceasefire")
    [sub] = bot.store.for_chat(USER)
    assert "Digest 1h" in await bot.send("/digest 1h")
    assert bot.store.settings_for_chat(USER).digest == "1h"
    reply = await bot.send("/quiet 23:00-07:00 Europe/Moscow")
    assert "23:00-07:00" in reply and "Europe/Moscow" in reply
    _, ruleset = RuleStore(bot.client).load()
    [target] = ruleset.subscriptions[0].notify
    assert target["telegram"] == USER and target["digest"] == "1h"
    assert target["quiet"] == {"start": "23:00", "end": "07:00", "tz": "Europe/Moscow"}
    assert "Usage" in await bot.send("/digest weekly")
    assert "unknown time zone" in await bot.send("/quiet 23:00-07:00 Mars/Base")
    assert "off" in await bot.send("/quiet off")
    assert bot.store.settings_for_chat(USER).quiet is None
    assert sub.id


async def test_channels_and_admin_only_changes(bot: BotHarness) -> None:
    refused = await bot.send("/add_channel @durov", user=USER)
    assert "Only admins" in refused
    assert watchlist.channels(bot.client) == []
    assert "added" in await bot.send("/add_channel @Durov", user=ADMIN)
    assert watchlist.channels(bot.client) == ["durov"]
    listing = await bot.send("/channels")
    assert "@durov" in listing and "@static_channel" in listing
    assert "❌" in await bot.send("/add_channel not a name!", user=ADMIN)
    assert "removed" in await bot.send("/remove_channel https://t.me/s/durov", user=ADMIN)
    assert watchlist.channels(bot.client) == []


async def test_user_outside_the_allow_list_is_ignored(bot: BotHarness) -> None:
    before = len(bot.api.sent)
    await bot.send("/watch ceasefire", user=STRANGER, expect=False)
    await bot.send("/help")  # processed after the stranger's update
    assert all(item["chat_id"] != STRANGER for item in bot.api.sent[before:])
    assert bot.store.all() == []


async def test_alert_buttons_mute_and_unwatch(bot: BotHarness) -> None:
    sub = bot.store.create(
        StoredSubscription("lavrov", "лавров", "Lavrov", ({"telegram": USER},), owner=f"tg:{USER}")
    )
    keyboard = alert_keyboard(sub.id)
    assert keyboard is not None
    mute, unwatch = (button["callback_data"] for button in keyboard["inline_keyboard"][0])
    answer = await bot.press(mute)
    assert "muted for 1 h" in answer["text"]
    stored = bot.store.require("lavrov")
    assert stored.muted() and not stored.paused
    _, ruleset = RuleStore(bot.client).load()
    [muted] = ruleset.subscriptions
    assert muted.muted(time.time()) and not muted.muted(time.time() + 3601)  # ends by itself
    index = RuleIndex.build(ruleset)
    post = _post("mfa_russia", 1, "Лаврову сказали")
    assert index.match(post, now=time.time()) == []  # the workers drop its matches meanwhile
    assert [m.subscription_id for m in index.match(post, now=time.time() + 3601)] == ["lavrov"]
    answer = await bot.press(unwatch)
    assert "Stopped" in answer["text"]
    assert bot.store.get("lavrov") is None
    answer = await bot.press(unwatch)
    assert "no longer exists" in answer["text"]


async def test_mute_callback_with_a_hostile_argument(bot: BotHarness) -> None:
    """Finding 7: callback data comes from the client; ``mute:<id>:²`` crashed the handler."""
    bot.store.create(
        StoredSubscription("lavrov", "лавров", "Lavrov", ({"telegram": USER},), owner=f"tg:{USER}")
    )
    for argument in ("²", "٣", "-5", "99999999999999999999", "1e9", ""):
        answer = await bot.press(f"mute:lavrov:{argument}")
        assert "muted for" in answer["text"], argument
        stored = bot.store.require("lavrov")
        assert stored.mute_until is not None
        assert stored.mute_until - time.time() <= constants.MUTE_MAX_SECONDS + 5


def test_bot_settings_read_comma_separated_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_BOT_ALLOWED", "1, 2,3")
    monkeypatch.setenv("TGWATCH_BOT_ADMINS", "")
    settings = BotSettings()
    access = BotAccess.from_settings(settings)
    assert settings.allowed == [1, 2, 3] and settings.admins == []
    assert access.allows(2, None) and not access.allows(9, 9)
    assert BotAccess().allows(9, 9)
