"""Reading a channel's history through the client: the gap after a watermark (bounded pages,
newest first), the newest message id, and the album around an edited item."""

from __future__ import annotations

from dataclasses import dataclass

from service.core.post import Post
from service.sources.mtproto.client import ChannelMessage, ChannelRef, MtprotoClient

# Telegram albums hold at most 10 items: an edited item's album lies within 10 ids either side.
ALBUM_MAX_ITEMS = 10


@dataclass
class Gap:
    """Messages after a watermark, newest first; ``complete`` when they reach it (else the
    pages ran out with older ones still unread, below ``before``)."""

    messages: list[ChannelMessage]
    complete: bool
    before: int | None


async def read_gap(
    client: MtprotoClient, ref: ChannelRef, watermark: int, *, pages: int, page_size: int
) -> Gap:
    """Up to ``pages`` pages of the messages after ``watermark``, newest first."""
    messages: list[ChannelMessage] = []
    before: int | None = None
    for _ in range(pages):
        page = await client.history(ref, min_id=watermark, before_id=before, limit=page_size)
        messages.extend(page)
        if len(page) < page_size:
            return Gap(messages, True, before)
        before = min(message.message_id for message in page)
    return Gap(messages, False, before)


async def newest_id(client: MtprotoClient, ref: ChannelRef) -> int:
    """The channel's newest message id (0 when it has none)."""
    latest = await client.history(ref, min_id=0, before_id=None, limit=1)
    return max((message.message_id for message in latest), default=0)


async def album_around(client: MtprotoClient, ref: ChannelRef, item: Post) -> list[Post]:
    """Every item of ``item``'s album as the channel shows it now, ``item`` in its new version."""
    page = await client.history(
        ref,
        min_id=max(0, item.message_id - ALBUM_MAX_ITEMS),
        before_id=item.message_id + ALBUM_MAX_ITEMS + 1,
        limit=2 * ALBUM_MAX_ITEMS + 1,
    )
    items = {m.message_id: m.post for m in page if m.post and m.post.album_id == item.album_id}
    items[item.message_id] = item
    return list(items.values())
