"""The aiogram listener against the local fake Bot API: long polling, webhook, bad input, stop."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from structlog.testing import capture_logs

from service.config import Settings
from service.sources.base import Listener
from service.sources.bot import SECRET_HEADER, BotListener, BotListenerError
from tests.fakes.botapi import FakeBotAPI
from tests.sources import ListSink

SECRET = "webhook-secret_0123456789"
ALBUM = (1011, 1012, 1013)


def make_bot(server: FakeBotAPI, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    return Bot(token=token or server.token, session=session)


def sample_updates(fixtures_dir: Path) -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = json.loads(
        (fixtures_dir / "mfa_russia_sample.json").read_text(encoding="utf-8")
    )
    return updates


def album_updates(fixtures_dir: Path) -> list[dict[str, Any]]:
    return [
        update
        for update in sample_updates(fixtures_dir)
        if update.get("channel_post", {}).get("message_id") in ALBUM
    ]


async def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds; it reads plain state of fakes and sinks, no events."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - there is no event to wait on
            await asyncio.sleep(0.01)


class Running:
    """A listener running in a task, stopped and awaited on exit."""

    def __init__(self, listener: BotListener) -> None:
        self.listener = listener
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.listener.run(self.stop))
        started = asyncio.create_task(self.listener.started.wait())
        await asyncio.wait({self.task, started}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self.task.done():
            self.task.result()  # raise what stopped it
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
async def polling(fake_botapi: FakeBotAPI, sink: ListSink) -> AsyncIterator[BotListener]:
    listener = BotListener(
        make_bot(fake_botapi), sink, album_wait=0.05, poll_timeout=1, retry_min=0.01
    )
    yield listener
    await listener.bot.session.close()


async def test_polling_delivers_the_sample_once_with_album_merged_and_edits(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    updates = sample_updates(fixtures_dir)
    fake_botapi.add_updates(*updates)
    messages = [u["channel_post"] for u in updates if "channel_post" in u]
    groups: dict[str, list[int]] = {}
    for message in messages:
        if "media_group_id" in message:
            groups.setdefault(message["media_group_id"], []).append(message["message_id"])
    followers = {mid for ids in groups.values() for mid in sorted(ids)[1:]}
    service = {m["message_id"] for m in messages if "pinned_message" in m}  # nothing to read
    expected_ids = {m["message_id"] for m in messages} - followers - service

    assert isinstance(polling, Listener)
    async with Running(polling):
        await wait_for(lambda: len(sink.posts) >= len(expected_ids) + 2)
        # Every update confirmed and no album held: nothing more can arrive.
        await wait_for(lambda: not fake_botapi.updates and not polling.intake.pending_albums)

    first_versions = [post for post in sink.posts if not post.is_edit]
    assert sorted(post.message_id for post in first_versions) == sorted(expected_ids)
    album = sink.versions(ALBUM[0])
    assert len(album) == 1 and album[0].album_items == ALBUM and album[0].text
    for edited_id in (1003, 1008):
        original, edit = sink.versions(edited_id)
        assert edit.is_edit and edit.key == original.key and edit.text != original.text
    assert len(sink.posts) == len(expected_ids) + 2
    assert {post.source for post in sink.posts} == {"botapi"}
    assert sink.rejected == []
    # Only channel posts were asked for, and the last batch was confirmed on stop.
    calls = fake_botapi.calls("getUpdates")
    assert json.loads(calls[0]["allowed_updates"]) == ["channel_post", "edited_channel_post"]
    assert fake_botapi.updates == []
    assert polling.stats.enqueued == len(sink.posts)


async def test_polling_twice_enqueues_each_version_once(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    updates = sample_updates(fixtures_dir)
    fake_botapi.add_updates(*updates[:5])
    async with Running(polling):
        await wait_for(lambda: len(sink.posts) == 5)
        # The same updates again under new ids (a replay): nothing new reaches the queue.
        replay = copy.deepcopy(updates[:5])
        for number, update in enumerate(replay):
            update["update_id"] = 500_000_000 + number
        fake_botapi.add_updates(*replay)
        await wait_for(lambda: polling.stats.duplicates == 5)
    assert len(sink.posts) == 5


async def test_malformed_updates_are_set_aside_and_polling_goes_on(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    good = sample_updates(fixtures_dir)[0]
    no_chat = copy.deepcopy(good)
    no_chat["update_id"] += 1
    del no_chat["channel_post"]["chat"]  # aiogram cannot read it
    bad_entity = copy.deepcopy(good)
    bad_entity["update_id"] += 2
    bad_entity["channel_post"]["message_id"] = 77
    bad_entity["channel_post"]["entities"] = [{"offset": 9000, "length": 3, "type": "bold"}]
    later = copy.deepcopy(good)
    later["update_id"] += 3
    later["channel_post"]["message_id"] = 78
    fake_botapi.add_updates(good, no_chat, bad_entity, later)

    async with Running(polling):
        await wait_for(lambda: len(sink.posts) == 2 and len(sink.rejected) == 2)

    assert [post.message_id for post in sink.posts] == [1000, 78]
    reasons = {rejected.index: rejected.reason for rejected in sink.rejected}
    assert set(reasons) == {good["update_id"] + 1, good["update_id"] + 2}
    assert "chat" in reasons[good["update_id"] + 1]
    assert all(rejected.source == "botapi" and rejected.raw for rejected in sink.rejected)
    assert fake_botapi.updates == []


async def test_a_failing_sink_loses_nothing(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    fake_botapi.add_updates(*sample_updates(fixtures_dir)[:3])
    sink.fail_puts = 2  # Redis down for a moment: the updates are fetched again

    async with Running(polling):
        await wait_for(lambda: len(sink.posts) == 3)

    assert [post.message_id for post in sink.posts] == [1000, 1001, 1002]


async def test_polling_stops_promptly_during_a_long_poll(
    fake_botapi: FakeBotAPI, sink: ListSink
) -> None:
    listener = BotListener(make_bot(fake_botapi), sink, poll_timeout=25)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await wait_for(lambda: len(fake_botapi.calls("getUpdates")) == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()

    stop.set()
    await asyncio.wait_for(task, 5)

    # The fake holds an idle getUpdates for 1 s; the listener must not wait for it.
    assert loop.time() - started < 0.9


async def test_buffered_album_is_emitted_on_stop(
    fake_botapi: FakeBotAPI, sink: ListSink, fixtures_dir: Path
) -> None:
    album = album_updates(fixtures_dir)
    listener = BotListener(make_bot(fake_botapi), sink, album_wait=60, poll_timeout=1)
    fake_botapi.add_updates(*album)

    async with Running(listener):
        await wait_for(lambda: listener.stats.updates == 3)
        assert sink.posts == []

    assert [post.album_items for post in sink.posts] == [ALBUM]


async def test_polling_clears_a_webhook_first(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    fake_botapi.webhook = {"url": "https://old.example/hook", "secret_token": None}
    fake_botapi.add_updates(sample_updates(fixtures_dir)[0])

    async with Running(polling):
        await wait_for(lambda: len(sink.posts) == 1)

    assert fake_botapi.webhook is None


async def test_the_token_never_reaches_the_logs(
    caplog: pytest.LogCaptureFixture, sink: ListSink
) -> None:
    token = "424242:SECRET-token-must-not-leak"
    session = AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9"))
    listener = BotListener(Bot(token=token, session=session), sink, retry_min=0.01)
    caplog.set_level(logging.DEBUG)
    stop = asyncio.Event()

    with capture_logs() as events:
        task = asyncio.create_task(listener.run(stop))
        await wait_for(lambda: sum(e["event"] == "bot_poll_failed" for e in events) >= 2)
        stop.set()
        await asyncio.wait_for(task, 5)

    failed = [event for event in events if event["event"] == "bot_poll_failed"]
    assert failed[0]["error"] == "TelegramNetworkError"
    text = repr(events) + caplog.text
    assert token not in text and token.split(":")[1] not in text


async def test_a_refused_token_stops_with_a_clean_error(
    fake_botapi: FakeBotAPI, sink: ListSink
) -> None:
    token = "999999:WRONG-token-for-this-server"
    listener = BotListener(make_bot(fake_botapi, token), sink)

    with pytest.raises(BotListenerError) as raised:
        await asyncio.wait_for(listener.run(asyncio.Event()), 5)

    assert "401" in str(raised.value) and token not in str(raised.value)


# --- webhook ---------------------------------------------------------------------------------
@pytest.fixture
async def webhook(fake_botapi: FakeBotAPI, sink: ListSink) -> AsyncIterator[BotListener]:
    listener = BotListener(
        make_bot(fake_botapi),
        sink,
        mode="webhook",
        webhook_secret=SECRET,
        webhook_port=0,
        webhook_path="/hook",
        album_wait=0.05,
    )
    async with Running(listener):
        await wait_for(lambda: fake_botapi.webhook is not None)
        yield listener


async def post_update(listener: BotListener, body: Any, secret: str | None) -> int:
    url = f"http://127.0.0.1:{listener.webhook_port}/hook"
    headers = {} if secret is None else {SECRET_HEADER: secret}
    data = body if isinstance(body, str) else json.dumps(body)
    headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, data=data, headers=headers) as response,
    ):
        return response.status


async def test_webhook_is_set_with_the_secret(
    fake_botapi: FakeBotAPI, webhook: BotListener
) -> None:
    assert fake_botapi.webhook == {
        "url": f"http://127.0.0.1:{webhook.webhook_port}/hook",
        "secret_token": SECRET,
    }
    params = fake_botapi.calls("setWebhook")[0]
    assert json.loads(params["allowed_updates"]) == ["channel_post", "edited_channel_post"]


async def test_webhook_accepts_an_update_with_the_right_secret(
    webhook: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    update = sample_updates(fixtures_dir)[0]

    status = await post_update(webhook, update, SECRET)

    assert status == 200
    assert [post.message_id for post in sink.posts] == [1000]  # in the sink before the answer


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
async def test_webhook_refuses_a_missing_or_wrong_secret(
    webhook: BotListener, sink: ListSink, fixtures_dir: Path, secret: str | None
) -> None:
    status = await post_update(webhook, sample_updates(fixtures_dir)[0], secret)

    assert status in (401, 403)
    assert sink.posts == [] and sink.rejected == []


async def test_webhook_sets_a_malformed_update_aside(
    webhook: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    broken = copy.deepcopy(sample_updates(fixtures_dir)[0])
    del broken["channel_post"]["date"]

    assert await post_update(webhook, broken, SECRET) == 200  # Telegram must not resend it
    assert await post_update(webhook, "{not json", SECRET) == 400
    assert await post_update(webhook, sample_updates(fixtures_dir)[1], SECRET) == 200

    assert [post.message_id for post in sink.posts] == [1001]
    assert len(sink.rejected) == 2
    assert sink.rejected[0].index == broken["update_id"]


async def test_webhook_merges_an_album(
    webhook: BotListener, sink: ListSink, fixtures_dir: Path
) -> None:
    for update in album_updates(fixtures_dir):
        assert await post_update(webhook, update, SECRET) == 200

    await wait_for(lambda: len(sink.posts) == 1)
    assert sink.posts[0].album_items == ALBUM


def test_webhook_mode_needs_a_secret(sink: ListSink) -> None:
    with pytest.raises(BotListenerError, match="TGWATCH_WEBHOOK_SECRET"):
        BotListener(Bot(token="1:" + "x" * 30), sink, mode="webhook")


async def test_from_settings_uses_the_configured_api_server(sink: ListSink) -> None:
    settings = Settings(
        telegram_token="123:ABCDEFGHIJKLMNOP",  # type: ignore[arg-type]
        telegram_api_url="http://botapi.internal:8081",
        webhook_secret="s3cret",  # type: ignore[arg-type]
        webhook_port=9000,
        _env_file=None,  # type: ignore[call-arg]
    )
    listener = BotListener.from_settings(settings, sink)
    try:
        assert listener.mode == "webhook" and listener.webhook_port == 9000
        api = listener.bot.session.api
        assert api.api_url(token="T", method="getMe") == "http://botapi.internal:8081/botT/getMe"
        polling = BotListener.from_settings(settings, sink, mode="polling")
        assert polling.mode == "polling"
        await polling.bot.session.close()
    finally:
        await listener.bot.session.close()

    with pytest.raises(BotListenerError, match="TGWATCH_TELEGRAM_TOKEN"):
        BotListener.from_settings(Settings(_env_file=None), sink)  # type: ignore[call-arg]


async def test_a_channel_post_aiogram_would_refuse_still_becomes_a_post(
    fake_botapi: FakeBotAPI, polling: BotListener, sink: ListSink
) -> None:
    """A real poll as older Bot API servers send it (no ``persistent_id`` on its options, which
    aiogram's model requires): the project's parser reads it; nothing is set aside."""
    poll = {"id": "1", "question": "Will the ceasefire hold?", "total_voter_count": 0,
            "options": [{"text": "Yes", "voter_count": 0}, {"text": "No", "voter_count": 0}],
            "is_closed": False, "is_anonymous": True, "type": "regular",
            "allows_multiple_answers": False}  # fmt: skip
    fake_botapi.add_updates({"update_id": 900, "channel_post": {
        "message_id": 5, "date": 1_700_000_000, "poll": poll,
        "chat": {"id": -1001234, "type": "channel", "username": "pollchan", "title": "Polls"},
    }})  # fmt: skip
    async with Running(polling):
        await wait_for(lambda: bool(sink.posts) and not fake_botapi.updates)
    [post] = sink.posts
    assert post.media == "poll" and "Will the ceasefire hold?" in post.text and "No" in post.text
    assert sink.rejected == []
