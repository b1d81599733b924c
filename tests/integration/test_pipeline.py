"""End to end on a real Redis: ingest the sample, run a burst worker, every post stored once."""

from __future__ import annotations

from pathlib import Path

import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from service import constants
from service.config import load_settings
from service.core.formats.detect import parse_file
from service.queue import Enqueuer
from service.sources.files import ingest_files
from service.store.posts import PostStore
from service.store.rejected import list_rejected
from workers.runner import WorkerSpec, run_worker


def run_burst_worker(url: str) -> None:
    """One burst worker in this process, through the workers' one entry point."""
    settings = load_settings(redis_url=url)
    run_worker(WorkerSpec({}, url, (constants.POSTS_QUEUE,), burst=True), settings)


async def ingest(url: str, *paths: Path, batch_size: int = 7) -> Enqueuer:
    connection = redis.Redis.from_url(url)
    enqueuer = Enqueuer(connection, batch_size=batch_size, batch_wait=0.05)
    try:
        await ingest_files(list(paths), enqueuer)
        await enqueuer.close()
    finally:
        connection.close()
    return enqueuer


async def test_sample_is_stored_once_per_version(
    redis_url: str, redis_client: redis.Redis, fixtures_dir: Path
) -> None:
    sample = fixtures_dir / "mfa_russia_sample.json"
    parsed = parse_file(sample)
    versions = {post.version_key for post in parsed.posts}

    enqueuer = await ingest(redis_url, sample)
    assert enqueuer.stats.enqueued == len(versions)
    # Batches of 7 posts: one job per batch, not one per post.
    queue = Queue(constants.POSTS_QUEUE, connection=redis_client,
                  serializer=JSONSerializer)  # fmt: skip
    assert queue.count == -(-len(versions) // 7)

    run_burst_worker(redis_url)
    assert queue.count == 0
    client = redis_client
    assert len(FailedJobRegistry(queue=queue)) == 0

    store = PostStore(client)
    assert store.channels() == ["mfa_russia"]
    stored = store.recent("mfa_russia", 1000)
    assert {v.post.key for v in stored} == {post.key for post in parsed.posts}
    all_versions = [v for s in stored for v in store.versions(s.post.key)]
    assert sorted(v.post.version_key for v in all_versions) == sorted(versions)
    stats = store.stats("mfa_russia")
    assert int(stats["posts"]) == len({post.key for post in parsed.posts})
    assert int(stats["versions"]) == len(versions)

    # Edited posts keep both versions, oldest first.
    edited = [key for key in {p.key for p in parsed.posts}
              if len(store.versions(key)) > 1]  # fmt: skip
    assert edited
    for key in edited:
        texts = [v.post.text for v in store.versions(key)]
        assert len(set(texts)) == len(texts)

    # The same file again, and the same posts from another format: nothing new travels.
    again = await ingest(redis_url, sample)
    assert again.stats.enqueued == 0
    assert again.stats.duplicates == len(parsed.posts)


async def test_malformed_items_are_set_aside_and_the_rest_go_through(
    redis_url: str, redis_client: redis.Redis, fixtures_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    good = (fixtures_dir / "mfa_russia_sample.json").read_text(encoding="utf-8")
    # Append two bad updates to an otherwise good array.
    broken.write_text(
        good.rstrip().rstrip("]") + ', {"update_id": 1, "channel_post": {"message_id": "x"}}, 42]',
        encoding="utf-8",
    )
    enqueuer = await ingest(redis_url, broken)
    assert enqueuer.stats.rejected == 2
    rejected = list_rejected(redis_client, 10)
    assert {entry["source"] for entry in rejected} == {str(broken)}
    assert all(entry["reason"] for entry in rejected)
    assert enqueuer.stats.enqueued == len({p.version_key for p in parse_file(
        fixtures_dir / "mfa_russia_sample.json").posts})  # fmt: skip


async def test_a_bad_post_in_a_job_is_set_aside_not_the_batch(
    redis_url: str, redis_client: redis.Redis
) -> None:
    client = redis_client
    queue = Queue(constants.POSTS_QUEUE, connection=client, serializer=JSONSerializer)
    good = {"channel": "demo", "message_id": 5, "date": "2024-09-23T15:41:05+00:00", "text": "hi"}
    queue.enqueue("workers.jobs.process_posts", [good, {"channel": "demo"}])
    run_burst_worker(redis_url)
    assert PostStore(client).latest("demo/5") is not None
    assert list_rejected(client, 5)[0]["stage"] == "job"


async def test_the_same_posts_from_three_formats_travel_once(
    redis_url: str, fixtures_dir: Path
) -> None:
    updates = fixtures_dir / "mfa_russia_sample.json"
    first = await ingest(redis_url, updates)
    assert first.stats.enqueued == len({p.version_key for p in parse_file(updates).posts})
    # The export knows the channel only by id and the preview carries the final texts: every
    # post in them is a version the bot updates already brought.
    others = await ingest(redis_url, fixtures_dir / "mfa_russia_export.json",
                          fixtures_dir / "mfa_russia_preview.html")  # fmt: skip
    assert others.stats.seen > 0
    assert others.stats.enqueued == 0
