"""A post stage on a real Redis, built in the test process (no RQ), sharing one enricher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
from prometheus_client import CollectorRegistry

from service.core.enrich import Enricher, build_enricher
from service.core.post import Post
from service.delivery_queue import deliveries_queue
from service.metrics import Metrics
from service.store.matches import RedisMatchState
from service.store.posts import PostStore
from workers.context import LiveRules, PostStage


class CountingConnection(redis.Connection):
    """A connection that counts the round trips made through it (one send per command or
    pipeline; replies are read after it)."""

    sends = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shared_enricher() -> Enricher:
    return build_enricher()


@pytest.fixture
def counting_client(redis_url: str) -> Iterator[redis.Redis]:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def make_stage(shared_enricher: Enricher) -> Iterator[Callable[[redis.Redis], PostStage]]:
    stages: list[PostStage] = []

    def make(client: redis.Redis) -> PostStage:
        metrics = Metrics(CollectorRegistry())
        stage = PostStage(
            redis=client,
            metrics=metrics,
            posts=PostStore(client),
            enricher=shared_enricher,
            rules=LiveRules(client, metrics),
            match_state=RedisMatchState(client),
            deliveries=deliveries_queue(client),
        )
        stage.rules.on_change = stage._rules_changed
        stages.append(stage)
        return stage

    yield make
    for stage in stages:
        stage.rules.close()


def post(text: str, message_id: int = 1, channel: str = "chan", edited: bool = False) -> Post:
    return Post(
        channel=channel,
        message_id=message_id,
        date=datetime(2024, 9, 25, tzinfo=UTC),
        text=text,
        edited=edited,
    )
