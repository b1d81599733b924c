"""One listener process of the multi-process test: an account pool over a fake Telegram, posting
into the real queue. Run as ``python -m tests.sources.mtproto.proc_listener``.

Every process builds the same fake world (channels with the same posts) and follows the same
feed file: each line ``<channel>\\t<text>`` the test appends is published in that world, so the
same post has the same id, date and text in every process, as one Telegram would show it. Every
post a process hands to the queue is also pushed to a Redis list (``PUTS_KEY``) before the
queue's dedupe, so the test sees a channel read twice even when the queue would hide it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path

import redis

from service.core.post import Post
from service.logging import configure_logging
from service.queue import Enqueuer
from service.sources.mtproto.pool import AccountPool
from service.sources.mtproto.writer import ChannelWriter
from service.store.accounts import AccountStore
from service.store.channels import ChannelStore
from service.store.posts import PostStore
from tests.sources.mtproto.conftest import mtproto_settings
from tests.sources.mtproto.fake import FakeTelegram

PUTS_KEY = "tgwatch-test:puts"


class RecordingSink(Enqueuer):
    def __init__(self, connection: redis.Redis, account: str) -> None:
        super().__init__(connection, batch_wait=0.05)
        self.account = account

    async def put_many(self, posts: Sequence[Post]) -> int:
        if posts:
            entries = [f"{self.account} {post.version_key}" for post in posts]
            await asyncio.to_thread(self.connection.rpush, PUTS_KEY, *entries)
        return await super().put_many(posts)


def read_lines(feed: Path) -> list[str]:
    return feed.read_text(encoding="utf-8").splitlines() if feed.exists() else []


async def follow(world: FakeTelegram, feed: Path, stop: asyncio.Event) -> None:
    done = 0
    while not stop.is_set():
        lines = await asyncio.to_thread(read_lines, feed)
        for line in lines[done:]:
            channel, text = line.split("\t", 1)
            world.publish(world.channel(channel), text)
        done = len(lines)
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    world = FakeTelegram()
    for name in args.channels.split(","):
        world.add_channel(name, posts=args.posts)
    connection = redis.Redis.from_url(args.redis)
    store, channels = AccountStore.from_url(args.redis), ChannelStore.from_url(args.redis)
    sink = RecordingSink(connection, args.account)
    writer = ChannelWriter(sink, channels, store, PostStore(connection))
    names = args.channels.split(",")

    async def watch() -> list[str]:
        return names

    settings = mtproto_settings(lease_seconds=args.lease)
    pool = AccountPool([args.account], world.client, store=store, writer=writer,
                       settings=settings, watch=watch)  # fmt: skip
    follower = asyncio.create_task(follow(world, Path(args.feed), stop))
    await pool.run(stop)
    follower.cancel()
    await sink.close()
    await store.aclose()
    await channels.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for option in ("--redis", "--account", "--channels", "--feed"):
        parser.add_argument(option, required=True)
    parser.add_argument("--posts", type=int, default=2)
    parser.add_argument("--lease", type=float, default=1.5)
    configure_logging("console", "warning")
    asyncio.run(main(parser.parse_args()))
