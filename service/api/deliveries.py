"""The API's delivery routes: alerts, webhook endpoints and their logs, redelivery.

Everything here is read per owner, each in a bounded number of Redis calls: a tenant's alerts
come from its own stream, its endpoints are (owner, URL) pairs with their own logs and disabled
state, its dead letters from its own list. An admin reads the operator's views of all of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from aiohttp import web

from service import constants
from service.api.common import context, owner_scope, shown_subscription_id
from service.api.decode import ApiError, int_param
from service.core.delivery import WebhookTarget, parse_target
from service.delivery_queue import deliveries_queue, redeliver
from service.store.deliveries import Ledger
from service.store.matches import alerts_page
from service.store.subscribers import SubscriberStore


async def list_alerts(request: web.Request) -> web.Response:
    limit = int_param(request.query.get("limit"), "limit", 50, constants.API_PAGE_MAX)
    before = request.query.get("before", "+")
    if len(before) > 64:
        raise ApiError(422, "invalid_parameter", '"before" is not a stream id')
    ctx = context(request)
    try:
        page, cursor = await asyncio.to_thread(
            alerts_page, ctx.client, before, limit, owner=owner_scope(request)
        )
    except redis.ResponseError:
        raise ApiError(422, "invalid_parameter", '"before" is not a stream id') from None
    alerts = []
    for entry_id, alert in page:
        data = alert.to_dict()
        data["subscription_id"] = shown_subscription_id(request, alert.subscription_id)
        alerts.append({"stream_id": entry_id, **data})
    return web.json_response({"alerts": alerts, "next_before": cursor})


def _endpoints(store: SubscriberStore, owner: str | None) -> dict[str, dict[str, Any]]:
    """The webhook endpoints of ``owner``'s subscriptions (everyone's when None), by id."""
    found: dict[str, dict[str, Any]] = {}
    for sub in store.subscriptions(owner):
        for raw in sub.targets:
            if "webhook" not in raw:
                continue
            try:
                target = parse_target({**raw, "owner": sub.owner})
            except ValueError:
                continue
            assert isinstance(target, WebhookTarget)
            entry = found.setdefault(
                target.endpoint_id,
                {"id": target.endpoint_id, "url": target.url, "subscriptions": [],
                 "target": target},
            )  # fmt: skip
            entry["subscriptions"].append(sub)
    return found


async def list_endpoints(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(_endpoints, context(request).store, owner_scope(request))
    items = [
        {
            "id": entry["id"],
            "url": entry["url"],
            "subscriptions": [shown_subscription_id(request, s.id) for s in entry["subscriptions"]],
        }
        for entry in found.values()
    ]
    return web.json_response({"endpoints": sorted(items, key=lambda e: e["id"])})


async def endpoint_deliveries(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["id"]
    ctx = context(request)
    found = await asyncio.to_thread(_endpoints, ctx.store, owner_scope(request))
    if endpoint_id not in found:
        raise ApiError(404, "not_found", f'no endpoint "{endpoint_id[:40]}"')
    limit = int_param(request.query.get("limit"), "limit", 100, constants.API_PAGE_MAX)
    entries = await asyncio.to_thread(
        Ledger(ctx.client).attempts, found[endpoint_id]["target"], limit
    )
    return web.json_response({"endpoint": endpoint_id, "deliveries": entries})


def _redeliver(client: redis.Redis, owner: str | None, alert_id: str | None) -> int:
    return redeliver(
        Ledger(client), deliveries_queue(client), alert_id,
        owner=owner, limit=constants.REDELIVER_MAX,
    )  # fmt: skip


async def redeliver_alert(request: web.Request) -> web.Response:
    alert_id = request.match_info["id"]
    count = await asyncio.to_thread(
        _redeliver, context(request).client, owner_scope(request), alert_id
    )
    if not count:
        raise ApiError(404, "not_found", f'no dead delivery of alert "{alert_id[:40]}"')
    return web.json_response({"alert": alert_id, "redelivered": count}, status=202)


async def redeliver_dead(request: web.Request) -> web.Response:
    count = await asyncio.to_thread(_redeliver, context(request).client, owner_scope(request), None)
    return web.json_response({"redelivered": count}, status=202)
