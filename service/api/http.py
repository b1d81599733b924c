"""The HTTP API under /v1: its one route table, the middleware every request goes through, and
the app.

JSON in and out; a key in ``X-API-Key`` (stored hashed, see ``service.store.apikeys``). A key
sees and changes what its owner owns (``service.api.common``); an admin key sees everything and
alone may change channels. Every error — ours, aiohttp's (404, 405, 413) and any unexpected
one — is ``{"error": {"code", "message"}}``; an unexpected error is logged by type and answered
500 ``internal`` without a trace. ``ROUTES`` is read by the app and by the OpenAPI document
(``service.api.openapi``). Handlers live in ``subscriptions``, ``deliveries``, ``links`` and
``channels``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
import structlog
from aiohttp import web

from service import constants
from service.api import channels, deliveries, links, subscriptions
from service.api.common import API_KEY, CONTEXT, ApiContext
from service.api.decode import ApiError, error_response
from service.config import LimitSettings
from service.core.targets import STRICT, TargetPolicy
from service.store.apikeys import ApiKeyStore
from service.store.quotas import RequestBudget
from service.store.subscribers import OwnerLimits, SubscriberStore

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEY_HEADER = "X-API-Key"
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})
# A presented key longer than this is no key of ours (ours are ~60 characters).
API_KEY_MAX_CHARS = 200
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


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


async def openapi_document(request: web.Request) -> web.Response:
    from service.api.openapi import build_openapi

    return web.json_response(build_openapi(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/openapi.json", openapi_document, "This OpenAPI document (no key needed)"),
    Route("GET", "/v1/subscriptions", subscriptions.list_subscriptions, "List subscriptions",
          response="SubscriptionList"),
    Route("POST", "/v1/subscriptions", subscriptions.create_subscription, "Create a subscription",
          body="SubscriptionCreate", response="Subscription", status=201),
    Route("GET", "/v1/subscriptions/{id}", subscriptions.get_subscription, "Get a subscription",
          response="Subscription"),
    Route("PATCH", "/v1/subscriptions/{id}", subscriptions.update_subscription,
          "Change a subscription", body="SubscriptionUpdate", response="Subscription"),
    Route("DELETE", "/v1/subscriptions/{id}", subscriptions.delete_subscription,
          "Delete a subscription", status=204),
    Route("POST", "/v1/test", subscriptions.test_query, "Run a query over recent stored posts",
          body="TestRequest", response="TestResult"),
    Route("GET", "/v1/alerts", deliveries.list_alerts, "Recent alerts, newest first",
          response="AlertPage", params=("limit", "before")),
    Route("GET", "/v1/endpoints", deliveries.list_endpoints,
          "Webhook endpoints of your subscriptions", response="EndpointList"),
    Route("GET", "/v1/endpoints/{id}/deliveries", deliveries.endpoint_deliveries,
          "Delivery log of an endpoint, newest first", response="DeliveryLog",
          params=("limit",)),
    Route("POST", "/v1/alerts/{id}/redeliver", deliveries.redeliver_alert,
          "Redeliver an alert's dead deliveries", response="Redelivered", status=202),
    Route("POST", "/v1/dead-letters/redeliver", deliveries.redeliver_dead,
          "Redeliver dead deliveries (up to 1000 a call)", response="Redelivered", status=202),
    Route("POST", "/v1/telegram/links", links.new_link,
          "A one-time code a Telegram chat sends the bot to receive your alerts",
          response="LinkCode", status=201),
    Route("GET", "/v1/telegram/links", links.list_links, "Telegram chats linked to your key",
          response="LinkedChats"),
    Route("DELETE", "/v1/telegram/links/{chat}", links.delete_link,
          "Unlink a chat (it leaves your subscriptions)", status=204),
    Route("GET", "/v1/channels", channels.list_channels, "Channels polled and stored",
          response="Channels"),
    Route("POST", "/v1/channels", channels.add_channel, "Add a channel to the preview poller",
          body="ChannelAdd", response="ChannelAdded", status=201, admin=True),
    Route("DELETE", "/v1/channels/{name}", channels.remove_channel,
          "Remove a channel from the preview poller", status=204, admin=True),
)  # fmt: skip


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate by X-API-Key, enforce admin routes, and turn every error into JSON."""
    try:
        if request.path not in PUBLIC_PATHS:
            presented = request.headers.get(API_KEY_HEADER, "")
            key = None
            if presented and len(presented) <= API_KEY_MAX_CHARS and presented.isascii():
                key = await asyncio.to_thread(request.app[CONTEXT].keys.verify, presented)
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
        return error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except redis.RedisError as exc:
        log.warning("api_redis_error", error=type(exc).__name__)
        return error_response(503, "unavailable", "the store is unavailable; try again")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the request boundary: a bug answers JSON, never a traceback
        log.error("api_internal_error", error=type(exc).__name__, path=request.path[:200])
        return error_response(500, "internal", "an internal error; it was logged")


def _admin_only(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    wrapped._admin = True  # type: ignore[attr-defined]
    return wrapped


def build_app(
    client: redis.Redis,
    static_channels: list[str] | None = None,
    *,
    policy: TargetPolicy = STRICT,
    limits: LimitSettings | None = None,
) -> web.Application:
    """The API app on ``client``: webhook targets checked under ``policy``, owners held to
    ``limits`` (the settings' TGWATCH_LIMIT_*)."""
    limits = limits or LimitSettings()
    app = web.Application(
        middlewares=[errors_and_auth], client_max_size=constants.API_MAX_BODY_BYTES
    )
    tests = ThreadPoolExecutor(constants.TEST_THREADS, thread_name_prefix="tgwatch-test")
    app[CONTEXT] = ApiContext(
        client=client,
        store=SubscriberStore(client, OwnerLimits(limits.subscriptions, limits.regexes)),
        keys=ApiKeyStore(client),
        static_channels=list(static_channels or ()),
        policy=policy,
        limits=limits,
        tests=tests,
        test_budget=RequestBudget(client, "test", limits.test_per_minute),
    )

    async def stop_tests(_app: web.Application) -> None:
        tests.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_tests)
    for route in ROUTES:
        handler = _admin_only(route.handler) if route.admin else route.handler
        app.router.add_route(route.method, route.path, handler)
    return app
