"""The Telethon side of the interface without a network: Telethon's errors become the interface's,
and a raw update dispatched by Telethon's own update code reaches the stream mapped."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr
from telethon import errors, events, utils
from telethon.tl import types

from service.sources.mtproto.client import (
    AccountUnusableError,
    ChannelMessage,
    ChannelUnreadableError,
    Deletion,
    DisconnectedError,
    FloodWaitError,
    LoginFailedError,
    PasswordNeededError,
)
from service.sources.mtproto.telethon_client import TelethonClient, TelethonLogin, translate
from tests.sources.mtproto import tl


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (errors.UserDeactivatedBanError(None), AccountUnusableError, "banned"),
        (errors.UserDeactivatedError(None), AccountUnusableError, "deactivated"),
        (errors.AuthKeyUnregisteredError(None), AccountUnusableError, "logged_out"),
        (errors.SessionRevokedError(None), AccountUnusableError, "logged_out"),
        (errors.AuthKeyDuplicatedError(None), AccountUnusableError, "logged_out"),
        (errors.ChannelPrivateError(None), ChannelUnreadableError, "private"),
        (errors.UsernameNotOccupiedError(None), ChannelUnreadableError, "not_found"),
        (errors.UsernameInvalidError(None), ChannelUnreadableError, "not_found"),
        (errors.UserBannedInChannelError(None), ChannelUnreadableError, "banned_in_channel"),
        (errors.ChannelsTooMuchError(None), ChannelUnreadableError, "channels_too_much"),
        (errors.InviteHashExpiredError(None), ChannelUnreadableError, "invite_invalid"),
        (errors.PhoneCodeInvalidError(None), LoginFailedError, "code_invalid"),
        (errors.PasswordHashInvalidError(None), LoginFailedError, "password_invalid"),
    ],
)
def test_telethon_errors_become_the_interfaces(error: Exception, kind: type, reason: str) -> None:
    translated = translate(error, "resolve")
    assert isinstance(translated, kind)
    assert translated.reason == reason  # type: ignore[attr-defined]


def test_flood_waits_keep_their_seconds_and_operation() -> None:
    translated = translate(errors.FloodWaitError(None, capture=42), "join")
    assert isinstance(translated, FloodWaitError)
    assert (translated.seconds, translated.operation) == (42.0, "join")
    premium = translate(errors.FloodPremiumWaitError(None, capture=7), "history")
    assert isinstance(premium, FloodWaitError) and premium.seconds == 7.0


def test_network_and_password_and_unknown_errors() -> None:
    assert isinstance(translate(ConnectionError("reset"), "history"), DisconnectedError)
    assert isinstance(translate(TimeoutError(), "history"), DisconnectedError)
    assert isinstance(translate(errors.SessionPasswordNeededError(None), "sign_in"),
                      PasswordNeededError)  # fmt: skip
    odd = ValueError("something else")
    assert translate(odd, "history") is odd


async def test_a_raw_update_dispatched_by_telethon_reaches_the_stream() -> None:
    client = TelethonClient(SecretStr(""), 1, SecretStr("not-a-real-hash"))
    handlers = client._client.list_event_handlers()
    assert [(type(builder), callback) for callback, builder in handlers] == [
        (events.Raw, client._on_update)
    ]
    channel = tl.channel(77, "Seventy-seven", "seventyseven")
    new = tl.roundtrip(types.UpdateNewChannelMessage(
        message=tl.message(77, 5, tl.when(1700000000), "hello #world",
                           entities=[types.MessageEntityHashtag(6, 6)]),
        pts=1, pts_count=1))  # fmt: skip
    gone = tl.roundtrip(types.UpdateDeleteChannelMessages(77, [3, 4], pts=2, pts_count=2))
    for update in (new, gone):
        update._entities = {utils.get_peer_id(channel): channel}  # as Telethon attaches them
        await asyncio.wait_for(client._client._dispatch_update(update), 10)
    stream = client.updates()
    first = await anext(stream)
    assert isinstance(first, ChannelMessage) and first.post is not None
    assert (first.post.channel, first.post.text, first.post.channel_title) == (
        "seventyseven",
        "hello #world",
        "Seventy-seven",
    )
    assert [(e.type, e.text) for e in first.post.entities] == [("hashtag", "#world")]
    assert await anext(stream) == Deletion(77, (3, 4))
    with pytest.raises(DisconnectedError):  # never connected: the stream ends
        await anext(stream)


def test_a_fresh_login_has_an_empty_session_and_no_bot_token_path() -> None:
    login = TelethonLogin(1, SecretStr("not-a-real-hash"))
    assert login.session().get_secret_value() == ""
    assert not hasattr(login, "bot_token")
