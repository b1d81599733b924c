"""One post per album: the items of an MTProto album (one message each, sharing ``grouped_id``)
made into the post the other sources make of it.

The album post takes the smallest message id and the earliest date, lists every item id in
``album_items``, and takes its text, entities and author from the item with a caption (the first
item when none has one), as the Bot API source and the preview do.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.core.post import Post


def assemble_album(items: Sequence[Post], *, edited: bool = False) -> Post:
    """The album post of ``items`` (one album of one channel, any order, each id once)."""
    if not items:
        raise ValueError("an album needs at least one item")
    by_id = {item.message_id: item for item in items}
    ordered = [by_id[key] for key in sorted(by_id)]
    captioned = [item for item in ordered if item.text]
    base = captioned[0] if captioned else ordered[0]
    edit_dates = [item.edit_date for item in ordered if item.edit_date is not None]
    return base.with_changes(
        message_id=ordered[0].message_id,
        album_items=tuple(by_id) if len(by_id) == 1 else tuple(sorted(by_id)),
        date=min(item.date for item in ordered),
        edited=edited or any(item.edited for item in ordered),
        edit_date=max(edit_dates, default=None),
        views=max((item.views for item in ordered if item.views is not None), default=None),
    )


def group_albums(posts: Sequence[Post]) -> list[Post]:
    """Posts oldest first with each album's items made into one post at its first item's place."""
    ordered = sorted(posts, key=lambda post: post.message_id)
    albums: dict[str, list[Post]] = {}
    for post in ordered:
        if post.album_id is not None:
            albums.setdefault(post.album_id, []).append(post)
    result: list[Post] = []
    for post in ordered:
        if post.album_id is None:
            result.append(post)
        elif albums[post.album_id][0] is post:
            result.append(assemble_album(albums[post.album_id]))
    return result
