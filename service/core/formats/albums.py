"""Albums: several media messages sent together become one post, in every format.

``merge_albums`` groups Bot API items by ``media_group_id``; ``joins_export_album`` is the
export's heuristic (it has no album id); ``album_post`` builds the one post either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.core.formats.content import Content
from service.core.post import Post

# Telegram albums hold at most 10 items; the grouping heuristic never builds a larger one.
ALBUM_MAX_ITEMS = 10
# What an album can be made of (a poll or a sticker sent in the same second is not in it).
ALBUM_MEDIA = frozenset({"photo", "video", "animation", "document", "audio"})


@dataclass(frozen=True)
class AlbumItem:
    """A parsed export message plus what the album heuristic compares (its sender)."""

    post: Post
    from_id: object


def album_post(current: list[Post], latest: Post, ids: tuple[int, ...], date: datetime) -> Post:
    """One album post from the newest known version of each item, the same for every format.

    It carries the smallest message id (``ids[0]``), ``date``, the first item's media kind and
    every item's readable text in id order (an album usually has one caption, on whichever item
    the sender put it); the other fields come from the first captioned item.
    """
    ordered = sorted(current, key=lambda item: item.message_id)
    found = Content()
    for item in ordered:
        if item.text:
            pieces = item.parts or ()
            if not pieces:
                found.add("caption", item.text, item.entities)
            for part in pieces:
                inside = tuple(
                    entity.shifted(-part.offset)
                    for entity in item.entities
                    if part.offset <= entity.offset and entity.end <= part.end
                )
                found.add(part.kind, item.text[part.offset : part.end], inside)
    text, entities, parts = found.build()
    captioned = [item for item in ordered if item.text]
    base = captioned[0] if captioned else ordered[0]
    return base.with_changes(
        message_id=ids[0],
        album_items=ids,
        date=date,
        media=ordered[0].media,
        text=text,
        entities=entities,
        parts=parts,
        edited=any(item.edited for item in current),
        edit_date=max((item.edit_date for item in current if item.edit_date), default=None),
        update_id=latest.update_id,
    )


def merge_albums(posts: list[Post]) -> list[Post]:
    """Merge album items (posts sharing ``album_id`` in one channel) into one post per album.

    The album post carries the smallest message id, the earliest date and the first item's
    media kind, lists every item id in ``album_items``, and reads as the captions of its items
    in id order (usually one, on whichever item carries it: first, last or in between). It sits
    where the album's first item was. An item seen again later (an edited caption) yields a new
    version of the whole album at that place, so edits are not lost.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for position, post in enumerate(posts):
        if post.album_id is not None:
            groups.setdefault((post.channel_key, post.album_id), []).append(position)
    if not groups:
        return list(posts)
    emit: dict[int, Post] = {}
    absorbed: set[int] = set()
    for positions in groups.values():
        items = [posts[position] for position in positions]
        ids = tuple(sorted({item.message_id for item in items}))
        first_date = min(item.date for item in items)
        state: dict[int, Post] = {}
        for item in items:
            state.setdefault(item.message_id, item)
        emit[positions[0]] = album_post(list(state.values()), items[0], ids, first_date)
        seen: set[int] = set()
        for position, item in zip(positions, items, strict=True):
            absorbed.add(position)
            if item.message_id in seen:
                state[item.message_id] = item
                emit[position] = album_post(list(state.values()), item, ids, first_date)
            seen.add(item.message_id)
    merged: list[Post] = []
    for position, post in enumerate(posts):
        if position in emit:
            merged.append(emit[position])
        elif position not in absorbed:
            merged.append(post)
    return merged


def joins_export_album(group: list[AlbumItem], item: AlbumItem) -> bool:
    """Whether ``item`` continues the album that ``group`` started.

    A heuristic, because the export has no ``media_group_id``: Telegram Desktop writes an album
    as consecutive media messages with the same second of publication and sender, and one of
    them (usually the first, not always) carries the caption while the others have
    ``text: ""``. Two separate media posts sent in the same second, at most one of them with a
    caption, would be merged too; that is rare in channels and costs only the split, not text.
    """
    leader = group[0].post
    captioned = any(member.post.text for member in group)
    return (
        len(group) < ALBUM_MAX_ITEMS
        and leader.media in ALBUM_MEDIA
        and item.post.media in ALBUM_MEDIA
        and not (captioned and item.post.text)
        and item.post.date == leader.date
        and item.from_id == group[0].from_id
        and item.post.message_id > group[-1].post.message_id
    )


def export_album(group: list[AlbumItem]) -> Post:
    if len(group) == 1:
        return group[0].post
    posts = [item.post for item in group]
    ids = tuple(post.message_id for post in posts)
    return album_post(posts, posts[-1], ids, posts[0].date)
