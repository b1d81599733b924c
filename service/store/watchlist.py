"""The preview poller's dynamic channel list: channels added from the bot or the API.

One Redis SET (``constants.POLLER_CHANNELS_KEY``) of lower-cased usernames; the poller reads
``channels()`` beside the channels of its settings (TGWATCH_CHANNELS).
"""

from __future__ import annotations

import re

import redis

from service import constants

# A public username as Telegram allows it: 5-32 letters, digits and "_", starting with a letter.
_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_LINK_RE = re.compile(r"(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?([^/?#\s]+)/?")


def channel_name(raw: str) -> str:
    """``@name``, ``name`` or a t.me link as the username (lower case); ValueError otherwise."""
    text = raw.strip()
    link = _LINK_RE.fullmatch(text)
    name = link.group(1) if link else text.removeprefix("@")
    if not _USERNAME_RE.fullmatch(name):
        raise ValueError("expected a public channel username like @name (5-32 letters, digits, _)")
    return name.lower()


def add_channel(client: redis.Redis, raw: str) -> tuple[str, bool]:
    """Add a channel; returns (its name, whether it was new)."""
    name = channel_name(raw)
    return name, bool(client.sadd(constants.POLLER_CHANNELS_KEY, name))


def remove_channel(client: redis.Redis, raw: str) -> tuple[str, bool]:
    """Remove a channel; returns (its name, whether it was there)."""
    name = channel_name(raw)
    return name, bool(client.srem(constants.POLLER_CHANNELS_KEY, name))


def channels(client: redis.Redis) -> list[str]:
    """The channels added dynamically, sorted."""
    members = client.smembers(constants.POLLER_CHANNELS_KEY)
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
