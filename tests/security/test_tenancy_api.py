"""Finding 4 through the HTTP API: two tenants (and an admin) try every read and write on each
other's objects. Nothing of one tenant is visible to, or changeable by, the other; no error
tells one tenant anything about the other."""

from __future__ import annotations

import json
from typing import Any

import redis

from service import constants
from service.core.delivery import DeliveryJob, parse_target
from service.core.model import Alert
from service.store.deliveries import Ledger
from service.store.subscribers import SubscriberStore
from tests.security.conftest import Api, hook

URL = "https://hooks.example.org/shared"
POST = {
    "channel": "chan",
    "message_id": 5,
    "text": "x",
    "date": "2024-05-01T10:00:00+00:00",
    "content_hash": "h5",
}


async def _create(api: Api, who: str, sub_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": sub_id, "query": "lavrov", "targets": [hook(URL)], **fields}
    status, created = await api.call("POST", "/v1/subscriptions", body, who=who)
    assert status == 201, created
    return dict(created)


def _internal_id(client: redis.Redis, owner: str) -> str:
    [sub] = SubscriberStore(client).subscriptions(owner)
    return sub.id


def _dead_letter(client: redis.Redis, sub_id: str, owner: str) -> Alert:
    alert = Alert(sub_id, POST, matched_at=1.0)
    target = parse_target({**hook(URL), "owner": owner})
    Ledger(client).dead_letter(DeliveryJob(alert, target, 8), "HTTP 500")
    return alert


async def test_same_id_in_two_tenants_conflicts_with_nobody(api: Api) -> None:
    a = await _create(api, "a", "lavrov")
    b = await _create(api, "b", "lavrov")  # no 409: ids are the tenant's own
    assert a["id"] == b["id"] == "lavrov"
    status, body = await api.call("POST", "/v1/subscriptions", {"id": "lavrov", "query": "x"})
    assert status == 409 and "lavrov" in body["error"]["message"]  # one's own conflict only
    status, body = await api.call("GET", "/v1/subscriptions/lavrov", who="b")
    assert body["query"] == "lavrov"
    await api.call("PATCH", "/v1/subscriptions/lavrov", {"query": "changed"}, who="b")
    status, body = await api.call("GET", "/v1/subscriptions/lavrov", who="a")
    assert body["query"] == "lavrov"  # b changed its own


async def test_a_tenant_cannot_read_or_change_the_other_s_subscriptions(
    api: Api, redis_client: redis.Redis
) -> None:
    await _create(api, "a", "secret-plan")
    internal = _internal_id(redis_client, "api:alpha")
    status, listing = await api.call("GET", "/v1/subscriptions", who="b")
    assert listing["subscriptions"] == []
    missing = await api.call("GET", "/v1/subscriptions/nothing-here", who="b")
    for sub_id in ("secret-plan", internal):
        assert await api.call("GET", f"/v1/subscriptions/{sub_id}", who="b") == (
            404,
            {"error": {"code": "not_found", "message": f'no subscription "{sub_id}"'}},
        )
        assert missing[0] == 404
        assert (await api.call("PATCH", f"/v1/subscriptions/{sub_id}", {"paused": True}, who="b"))[
            0
        ] == 404
        assert (await api.call("DELETE", f"/v1/subscriptions/{sub_id}", who="b"))[0] == 404
    status, mine = await api.call("GET", "/v1/subscriptions/secret-plan")
    assert status == 200 and mine["paused"] is False
    # The admin sees every subscription, by its stored id.
    status, everything = await api.call("GET", "/v1/subscriptions", who="admin")
    assert [s["id"] for s in everything["subscriptions"]] == [internal]


async def test_delivery_log_and_disabled_state_are_per_tenant(
    api: Api, redis_client: redis.Redis
) -> None:
    await _create(api, "a", "one")
    status, endpoints_a = await api.call("GET", "/v1/endpoints")
    [endpoint_a] = endpoints_a["endpoints"]
    target_a = parse_target({**hook(URL), "owner": "api:alpha"})
    Ledger(redis_client).log_attempt(  # type: ignore[arg-type]
        target_a, {"status": 500, "latency_ms": 84, "alert_id": "al_x"}, 10
    )
    Ledger(redis_client).disable_target(target_a.key, "gone", "410")
    status, log_a = await api.call("GET", f"/v1/endpoints/{endpoint_a['id']}/deliveries")
    assert [e["status"] for e in log_a["deliveries"]] == [500]

    # Tenant b adds the same URL: a log and a state of its own, empty and enabled.
    await _create(api, "b", "two")
    status, endpoints_b = await api.call("GET", "/v1/endpoints", who="b")
    [endpoint_b] = endpoints_b["endpoints"]
    assert endpoint_b["id"] != endpoint_a["id"] and endpoint_b["subscriptions"] == ["two"]
    status, log_b = await api.call("GET", f"/v1/endpoints/{endpoint_b['id']}/deliveries", who="b")
    assert status == 200 and log_b["deliveries"] == []
    target_b = parse_target({**hook(URL), "owner": "api:beta"})
    assert Ledger(redis_client).disabled(target_b.key) is None
    assert (await api.call("GET", f"/v1/endpoints/{endpoint_a['id']}/deliveries", who="b"))[
        0
    ] == 404


async def test_alerts_and_dead_letters_are_per_tenant(api: Api, redis_client: redis.Redis) -> None:
    await _create(api, "a", "one")
    await _create(api, "b", "one")
    alert_a = _dead_letter(redis_client, _internal_id(redis_client, "api:alpha"), "api:alpha")
    alert_b = _dead_letter(redis_client, _internal_id(redis_client, "api:beta"), "api:beta")
    from service.store.matches import RedisMatchState

    RedisMatchState(redis_client).index_owner_alert(alert_a, "api:alpha")
    RedisMatchState(redis_client).index_owner_alert(alert_b, "api:beta")
    status, page = await api.call("GET", "/v1/alerts", who="b")
    assert [a["id"] for a in page["alerts"]] == [alert_b.id]
    assert page["alerts"][0]["subscription_id"] == "one"  # the tenant's own id
    assert (await api.call("POST", f"/v1/alerts/{alert_a.id}/redeliver", who="b"))[0] == 404
    status, body = await api.call("POST", "/v1/dead-letters/redeliver", who="b")
    assert body == {"redelivered": 1}
    dead = [json.loads(raw) for raw in redis_client.lrange(constants.DELIVERY_DEAD_KEY, 0, -1)]
    assert [d["job"]["alert"]["id"] for d in dead] == [alert_a.id]  # a's stays for a
    status, body = await api.call("POST", f"/v1/alerts/{alert_a.id}/redeliver")
    assert status == 202 and body["redelivered"] == 1


async def test_no_api_key_makes_the_bot_message_a_chat_that_did_not_agree(
    api: Api, redis_client: redis.Redis
) -> None:
    for who in ("a", "admin"):
        status, body = await api.call(
            "POST", "/v1/subscriptions", {"query": "x", "targets": [{"telegram": 777}]}, who=who
        )
        assert status == 422 and body["error"]["code"] == "invalid_target", body
    # The chat agrees: it sends the bot the one-time code tenant a got.
    from service.store.links import ChatLinks

    status, link = await api.call("POST", "/v1/telegram/links")
    assert status == 201 and link["code"]
    assert ChatLinks(redis_client).redeem(link["code"], 777) == "api:alpha"
    assert ChatLinks(redis_client).redeem(link["code"], 778) is None  # one time only
    status, body = await api.call(
        "POST", "/v1/subscriptions", {"query": "x", "targets": [{"telegram": 777}]}
    )
    assert status == 201, body
    status, body = await api.call(
        "POST", "/v1/subscriptions", {"query": "x", "targets": [{"telegram": 777}]}, who="b"
    )
    assert status == 422  # linked to a, not to b
    status, chats = await api.call("GET", "/v1/telegram/links")
    assert chats == {"chats": [777]}
    assert (await api.call("GET", "/v1/telegram/links", who="b"))[1] == {"chats": []}
    assert (await api.call("DELETE", "/v1/telegram/links/777", who="b"))[0] == 404
    assert (await api.call("DELETE", "/v1/telegram/links/777"))[0] == 204
    [sub] = SubscriberStore(redis_client).subscriptions("api:alpha")
    assert sub.targets == ()  # unlinking takes the chat out of the tenant's subscriptions


async def test_an_operator_s_rules_file_never_removes_tenants_subscriptions(
    api: Api, redis_client: redis.Redis
) -> None:
    """`rules load` and `subscriptions import --prune` make the file the operator's setup: the
    operator's subscriptions the file lacks go, the tenants' (API, bot) stay as they are."""
    from service.core.rules import parse_rules
    from service.store.subscription import StoredSubscription
    from service.subscriptions_file import import_ruleset

    await _create(api, "a", "tenant-watch")
    store = SubscriberStore(redis_client)
    store.create(StoredSubscription("chat-watch", "x", targets=({"telegram": 42},), owner="tg:42"))
    store.create(StoredSubscription("old-operator-watch", "x"))
    ruleset = parse_rules("subscriptions:\n  - id: new\n    query: lavrov\n")
    summary = import_ruleset(redis_client, ruleset, prune=True)
    assert summary.removed == ["old-operator-watch"]
    kept = {sub.id: sub.owner for sub in store.all()}
    assert kept == {
        "chat-watch": "tg:42",
        "new": None,
        _internal_id(redis_client, "api:alpha"): "api:alpha",
    }


class _NoEnrichment:
    def enrich(self, _post: object, _tokens: object = None) -> object:
        from service.core.model import Enrichment

        return Enrichment()

    def with_watched(self, _entities: object) -> _NoEnrichment:
        return self


async def test_the_post_stage_files_each_alert_under_its_owner_once(
    api: Api, redis_client: redis.Redis
) -> None:
    """The call in workers/pipeline.py: a tenant's alert lands on its own page, once, even when
    a retried batch hands the same decided alert to delivery again."""
    from datetime import UTC, datetime

    from service.core.post import Post
    from service.delivery_queue import deliveries_queue
    from service.metrics import Metrics
    from service.store.matches import RedisMatchState
    from service.store.posts import PostStore
    from workers.context import LiveRules, PostStage
    from workers.pipeline import process_posts

    await api.call("POST", "/v1/subscriptions", {"id": "lavrov", "query": "лавров"})
    await api.call("POST", "/v1/subscriptions", {"id": "other", "query": "лавров"}, who="b")
    metrics = Metrics()
    stage = PostStage(
        redis=redis_client, metrics=metrics, posts=PostStore(redis_client),
        enricher=_NoEnrichment(),  # type: ignore[arg-type]
        rules=LiveRules(redis_client, metrics), match_state=RedisMatchState(redis_client),
        deliveries=deliveries_queue(redis_client),
    )  # fmt: skip
    post = Post("mfa_russia", 7, datetime.now(UTC), "Сергей Лавров прибыл")
    process_posts(stage, [post])
    [decided] = stage.match_state.decided([post.version_key])
    assert decided is not None and len(decided) == 2
    process_posts(stage, [post])  # a redone batch hands the decided alerts over again
    for who, public in (("a", "lavrov"), ("b", "other")):
        _status, page = await api.call("GET", "/v1/alerts", who=who)
        assert [a["subscription_id"] for a in page["alerts"]] == [public]
