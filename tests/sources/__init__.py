"""Tests of the live sources, and the in-memory sink they share (the Redis sink is the queue's)."""

from __future__ import annotations

from service.core.formats.result import Rejected
from service.core.post import Post


class ListSink:
    """A PostSink in a list: dedupe by version key, like the real sink; failures on request."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.rejected: list[Rejected] = []
        self.seen: set[str] = set()
        self.fail_puts = 0  # the next this many puts raise, as a sink whose Redis is down

    async def put(self, post: Post) -> bool:
        if self.fail_puts:
            self.fail_puts -= 1
            raise ConnectionError("sink unavailable")
        if post.version_key in self.seen:
            return False
        self.seen.add(post.version_key)
        self.posts.append(post)
        return True

    async def reject(self, rejected: Rejected) -> None:
        self.rejected.append(rejected)

    def versions(self, message_id: int) -> list[Post]:
        return [post for post in self.posts if post.message_id == message_id]
