"""The HTTP API under /v1: subscriptions, query tests, alerts, delivery log, redelivery, channels.

JSON in and out; a key in ``X-API-Key`` (stored hashed, see ``service.store.apikeys``). A key
sees and changes the subscriptions of its owner; an admin key sees all of them and alone may
change channels and redeliver every dead letter. Errors are ``{"error": {"code", "message"}}``.
The store is synchronous Redis, so handlers call it through ``asyncio.to_thread``. ``ROUTES``
is the one route table: the app and the OpenAPI document (``service.api.openapi``) both read it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import redis
import structlog
from aiohttp import web

from service import constants
from service.core.delivery import WebhookTarget, parse_target
from service.core.query.parser import QueryError
from service.delivery_queue import deliveries_queue, redeliver
from service.querytools import check_query, run_test, stored_entities
from service.store import watchlist
from service.store.apikeys import ApiKey, ApiKeyStore
from service.store.deliveries import Ledger
from service.store.matches import alerts_page
from service.store.posts import PostStore
from service.store.subscribers import (
    MODES,
    SUBSCRIPTION_ID_RE,
    StoredSubscription,
    SubscriberStore,
    SubscriptionExistsError,
    new_subscription_id,
    validate_targets,
)

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT = web.AppKey("client", redis.Redis)
STORE = web.AppKey("store", SubscriberStore)
KEYS = web.AppKey("keys", ApiKeyStore)
STATIC_CHANNELS = web.AppKey("static_channels", list)
API_KEY = web.RequestKey("api_key", ApiKey)
API_KEY_HEADER = "X-API-Key"
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: str | None = None  # the name of a request schema in the OpenAPI components
    response: str | None = None  # the name of the 2xx response schema
    status: int = 200
    admin: bool = False
    params: tuple[str, ...] = ()  # query parameters (integers, or a stream id for "before")


# --- helpers -----------------------------------------------------------------------------------


def _key(request: web.Request) -> ApiKey:
    return request[API_KEY]


def _owner(request: web.Request) -> str | None:
    """Whose subscriptions this request may touch: the key's owner, or everyone's for admins."""
    key = _key(request)
    return None if key.admin else key.owner


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return data


def _field(
    data: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    default: Any = None,
    required: bool = False,
) -> Any:
    if name not in data or data[name] is None:
        if required:
            raise ApiError(422, "invalid_body", f'"{name}" is required')
        return default
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ApiError(422, "invalid_body", f'"{name}" has the wrong type')
    return value


def _int_param(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_parameter", f'"{name}" must be an integer') from None
    if not 1 <= value <= high:
        raise ApiError(422, "invalid_parameter", f'"{name}" must be between 1 and {high}')
    return value


async def _check_query(client: redis.Redis, query: str) -> None:
    entities = await asyncio.to_thread(stored_entities, client)
    try:
        check_query(query, entities)
    except QueryError as exc:
        raise ApiError(400, "invalid_query", exc.message, position=exc.position) from None


def _targets(data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    raw = _field(data, "targets", list, [])
    try:
        return tuple(validate_targets(raw))
    except ValueError as exc:
        raise ApiError(422, "invalid_target", str(exc)) from None


def _mode(data: dict[str, Any], default: str) -> str:
    mode = _field(data, "mode", str, default)
    if mode not in MODES:
        raise ApiError(422, "invalid_body", f'"mode" must be one of {", ".join(MODES)}')
    return str(mode)


# --- subscriptions -----------------------------------------------------------------------------
async def list_subscriptions(request: web.Request) -> web.Response:
    subs = await asyncio.to_thread(request.app[STORE].subscriptions, _owner(request))
    return web.json_response({"subscriptions": [sub.to_dict() for sub in subs]})


async def create_subscription(request: web.Request) -> web.Response:
    data = await _body(request)
    query = _field(data, "query", str, required=True)
    sub_id = _field(data, "id", str) or new_subscription_id()
    if not SUBSCRIPTION_ID_RE.fullmatch(sub_id):
        raise ApiError(422, "invalid_body", 'an "id" holds only letters, digits, "_", "-", "."')
    await _check_query(request.app[CLIENT], query)
    sub = StoredSubscription(
        id=sub_id,
        query=query,
        name=_field(data, "name", str) or sub_id,
        targets=_targets(data),
        paused=_field(data, "paused", bool, False),
        mode=_mode(data, "auto"),
        owner=_key(request).owner,
    )
    try:
        created = await asyncio.to_thread(request.app[STORE].create, sub)
    except SubscriptionExistsError:
        raise ApiError(409, "conflict", f'a subscription "{sub_id}" already exists') from None
    log.info("api_subscription_created", subscription=created.id, key_id=_key(request).id)
    return web.json_response(created.to_dict(), status=201)


async def _owned(request: web.Request) -> StoredSubscription:
    sub_id = request.match_info["id"]
    sub = await asyncio.to_thread(request.app[STORE].get, sub_id, _owner(request))
    if sub is None:
        raise ApiError(404, "not_found", f'no subscription "{sub_id}"')
    return sub


async def get_subscription(request: web.Request) -> web.Response:
    return web.json_response((await _owned(request)).to_dict())


async def update_subscription(request: web.Request) -> web.Response:
    old = await _owned(request)
    data = await _body(request)
    unknown = set(data) - {"name", "query", "targets", "paused", "mode"}
    if unknown:
        raise ApiError(422, "invalid_body", f"unknown fields: {', '.join(sorted(unknown))}")
    query = _field(data, "query", str, old.query)
    if query != old.query:
        await _check_query(request.app[CLIENT], query)
    new = replace(
        old,
        query=query,
        name=_field(data, "name", str, old.name),
        targets=_targets(data) if "targets" in data else old.targets,
        paused=_field(data, "paused", bool, old.paused),
        mode=_mode(data, old.mode),
    )
    saved = await asyncio.to_thread(request.app[STORE].put, new)
    return web.json_response(saved.to_dict())


async def delete_subscription(request: web.Request) -> web.Response:
    sub = await _owned(request)
    await asyncio.to_thread(request.app[STORE].delete, sub.id)
    return web.Response(status=204)


# --- test, alerts ------------------------------------------------------------------------------
async def test_query(request: web.Request) -> web.Response:
    data = await _body(request)
    query = _field(data, "query", str, required=True)
    channels = _field(data, "channels", list)
    if channels is not None and not all(isinstance(c, str) for c in channels):
        raise ApiError(422, "invalid_body", '"channels" must be a list of usernames')
    limit = _field(data, "limit", int, constants.TEST_POSTS_PER_CHANNEL)
    if not 1 <= limit <= constants.RECENT_POSTS_PER_CHANNEL:
        raise ApiError(422, "invalid_body", '"limit" is out of range')
    client = request.app[CLIENT]
    entities = await asyncio.to_thread(stored_entities, client)
    try:
        result = await asyncio.to_thread(
            run_test,
            client,
            query,
            entities,
            channels=[c.lstrip("@").lower() for c in channels] if channels else None,
            per_channel=limit,
        )
    except QueryError as exc:
        raise ApiError(400, "invalid_query", exc.message, position=exc.position) from None
    return web.json_response(
        {
            "scanned": result.scanned,
            "channels": result.channels,
            "total_hits": result.total_hits,
            "hits": [hit.to_dict() for hit in result.hits],
        }
    )


def _read_alerts(
    client: redis.Redis, owner: str | None, before: str, limit: int, store: SubscriberStore
) -> tuple[list[dict[str, Any]], str | None]:
    owned = None if owner is None else {sub.id for sub in store.subscriptions(owner)}
    page, cursor = alerts_page(client, before, limit, subscriptions=owned)
    return [{"stream_id": entry_id, **alert.to_dict()} for entry_id, alert in page], cursor


async def list_alerts(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 50, constants.API_PAGE_MAX)
    before = request.query.get("before", "+")
    try:
        alerts, cursor = await asyncio.to_thread(
            _read_alerts, request.app[CLIENT], _owner(request), before, limit, request.app[STORE]
        )
    except redis.ResponseError:
        raise ApiError(422, "invalid_parameter", '"before" is not a stream id') from None
    return web.json_response({"alerts": alerts, "next_before": cursor if alerts else None})


# --- endpoints and redelivery ------------------------------------------------------------------
def _endpoints(store: SubscriberStore, owner: str | None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for sub in store.subscriptions(owner):
        for raw in sub.targets:
            if "webhook" not in raw:
                continue
            target = parse_target(raw)
            assert isinstance(target, WebhookTarget)
            entry = found.setdefault(
                target.endpoint_id,
                {
                    "id": target.endpoint_id,
                    "url": target.url,
                    "subscriptions": [],
                    "target": target,
                },
            )
            entry["subscriptions"].append(sub.id)
    return found


async def list_endpoints(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(_endpoints, request.app[STORE], _owner(request))
    items = [{k: v for k, v in e.items() if k != "target"} for e in found.values()]
    return web.json_response({"endpoints": sorted(items, key=lambda e: e["id"])})


async def endpoint_deliveries(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["id"]
    found = await asyncio.to_thread(_endpoints, request.app[STORE], _owner(request))
    if endpoint_id not in found:
        raise ApiError(404, "not_found", f'no endpoint "{endpoint_id}"')
    limit = _int_param(request, "limit", 100, constants.API_PAGE_MAX)
    log_entries = await asyncio.to_thread(
        Ledger(request.app[CLIENT]).attempts, found[endpoint_id]["target"], limit
    )
    return web.json_response({"endpoint": endpoint_id, "deliveries": log_entries})


def _redeliver(
    client: redis.Redis, store: SubscriberStore, owner: str | None, alert_id: str | None
) -> int:
    owned = None if owner is None else {sub.id for sub in store.subscriptions(owner)}
    return redeliver(Ledger(client), deliveries_queue(client), alert_id, subscriptions=owned)


async def redeliver_alert(request: web.Request) -> web.Response:
    alert_id = request.match_info["id"]
    count = await asyncio.to_thread(
        _redeliver, request.app[CLIENT], request.app[STORE], _owner(request), alert_id
    )
    if not count:
        raise ApiError(404, "not_found", f'no dead delivery of alert "{alert_id}"')
    return web.json_response({"alert": alert_id, "redelivered": count}, status=202)


async def redeliver_dead(request: web.Request) -> web.Response:
    count = await asyncio.to_thread(
        _redeliver, request.app[CLIENT], request.app[STORE], _owner(request), None
    )
    return web.json_response({"redelivered": count}, status=202)


# --- channels ----------------------------------------------------------------------------------
async def list_channels(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    dynamic = await asyncio.to_thread(watchlist.channels, client)
    stored = await asyncio.to_thread(PostStore(client).channels)
    static = sorted(c.lower() for c in request.app[STATIC_CHANNELS])
    return web.json_response(
        {
            "polled": sorted(set(static) | set(dynamic)),
            "added": dynamic,
            "configured": static,
            "stored": stored,
        }
    )


async def add_channel(request: web.Request) -> web.Response:
    data = await _body(request)
    raw = _field(data, "channel", str, required=True)
    try:
        name, new = await asyncio.to_thread(watchlist.add_channel, request.app[CLIENT], raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_channel", str(exc)) from None
    return web.json_response({"channel": name, "added": new}, status=201 if new else 200)


async def remove_channel(request: web.Request) -> web.Response:
    try:
        name, was = await asyncio.to_thread(
            watchlist.remove_channel, request.app[CLIENT], request.match_info["name"]
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_channel", str(exc)) from None
    if not was:
        raise ApiError(404, "not_found", f'channel "{name}" is not in the list')
    return web.Response(status=204)


async def openapi_document(request: web.Request) -> web.Response:
    from service.api.openapi import build_openapi

    return web.json_response(build_openapi(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/openapi.json", openapi_document, "This OpenAPI document (no key needed)"),
    Route(
        "GET",
        "/v1/subscriptions",
        list_subscriptions,
        "List subscriptions",
        response="SubscriptionList",
    ),
    Route(
        "POST",
        "/v1/subscriptions",
        create_subscription,
        "Create a subscription",
        body="SubscriptionCreate",
        response="Subscription",
        status=201,
    ),
    Route(
        "GET",
        "/v1/subscriptions/{id}",
        get_subscription,
        "Get a subscription",
        response="Subscription",
    ),
    Route(
        "PATCH",
        "/v1/subscriptions/{id}",
        update_subscription,
        "Change a subscription",
        body="SubscriptionUpdate",
        response="Subscription",
    ),
    Route(
        "DELETE", "/v1/subscriptions/{id}", delete_subscription, "Delete a subscription", status=204
    ),
    Route(
        "POST",
        "/v1/test",
        test_query,
        "Run a query over recent stored posts",
        body="TestRequest",
        response="TestResult",
    ),
    Route(
        "GET",
        "/v1/alerts",
        list_alerts,
        "Recent alerts, newest first",
        response="AlertPage",
        params=("limit", "before"),
    ),
    Route(
        "GET",
        "/v1/endpoints",
        list_endpoints,
        "Webhook endpoints of your subscriptions",
        response="EndpointList",
    ),
    Route(
        "GET",
        "/v1/endpoints/{id}/deliveries",
        endpoint_deliveries,
        "Delivery log of an endpoint, newest first",
        response="DeliveryLog",
        params=("limit",),
    ),
    Route(
        "POST",
        "/v1/alerts/{id}/redeliver",
        redeliver_alert,
        "Redeliver an alert's dead deliveries",
        response="Redelivered",
        status=202,
    ),
    Route(
        "POST",
        "/v1/dead-letters/redeliver",
        redeliver_dead,
        "Redeliver every dead delivery",
        response="Redelivered",
        status=202,
    ),
    Route("GET", "/v1/channels", list_channels, "Channels polled and stored", response="Channels"),
    Route(
        "POST",
        "/v1/channels",
        add_channel,
        "Add a channel to the preview poller",
        body="ChannelAdd",
        response="ChannelAdded",
        status=201,
        admin=True,
    ),
    Route(
        "DELETE",
        "/v1/channels/{name}",
        remove_channel,
        "Remove a channel from the preview poller",
        status=204,
        admin=True,
    ),
)


# --- the app -----------------------------------------------------------------------------------
@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate by X-API-Key, enforce admin routes, and turn every error into JSON."""
    try:
        if request.path not in PUBLIC_PATHS:
            presented = request.headers.get(API_KEY_HEADER, "")
            key = (
                await asyncio.to_thread(request.app[KEYS].verify, presented) if presented else None
            )
            if key is None:
                raise ApiError(401, "unauthorized", f"a valid {API_KEY_HEADER} header is required")
            request[API_KEY] = key
            route = getattr(request.match_info.route, "handler", None)
            if getattr(route, "_admin", False) and not key.admin:
                raise ApiError(403, "forbidden", "this needs an admin key")
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return error_response(exc.status, code, exc.reason)
    except redis.RedisError as exc:
        log.warning("api_redis_error", error=type(exc).__name__)
        return error_response(503, "unavailable", "the store is unavailable; try again")


def _admin_only(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    wrapped._admin = True  # type: ignore[attr-defined]
    return wrapped


def build_app(client: redis.Redis, static_channels: list[str] | None = None) -> web.Application:
    app = web.Application(
        middlewares=[errors_and_auth], client_max_size=constants.API_MAX_BODY_BYTES
    )
    app[CLIENT] = client
    app[STORE] = SubscriberStore(client)
    app[KEYS] = ApiKeyStore(client)
    app[STATIC_CHANNELS] = list(static_channels or ())
    for route in ROUTES:
        handler = _admin_only(route.handler) if route.admin else route.handler
        app.router.add_route(route.method, route.path, handler)
    return app
