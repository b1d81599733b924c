"""The API's subscription routes — create, read, change, delete — and the query test.

Every write checks what a subscriber may do: the query (and the cost of its regexes), each
target (a webhook's URL and secret under the settings' policy; a Telegram chat only when it
linked itself to the caller's owner, so no key can make the bot message a chat that did not
ask) and the owner's budgets. A tenant's ids are its own, so a conflict names only its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial
from typing import Any

from aiohttp import web

from service import constants
from service.api.common import caller, context, owner_scope, shown, stored_id
from service.api.decode import ApiError, error_response, query_test_fields, read_body
from service.api.decode import subscription_fields as read_fields
from service.core.query.parser import QueryError
from service.querytools import check_query, run_test, stored_entities
from service.store.subscribers import (
    QuotaError,
    StoredSubscription,
    SubscriptionExistsError,
    new_subscription_id,
    validate_targets,
)


async def _check_query(request: web.Request, query: str) -> None:
    ctx = context(request)
    entities = await asyncio.to_thread(stored_entities, ctx.client)
    try:
        await asyncio.to_thread(check_query, query, entities, regex_ms=ctx.limits.regex_ms)
    except QueryError as exc:
        raise ApiError(400, "invalid_query", exc.message, position=exc.position) from None


async def _targets(
    request: web.Request, raw: list[Any], old: tuple[dict[str, Any], ...] = ()
) -> tuple[dict[str, Any], ...]:
    """Targets checked; a chat not already a target must have linked itself to the owner."""
    ctx = context(request)
    try:
        targets = validate_targets(raw, ctx.policy)
    except ValueError as exc:
        raise ApiError(422, "invalid_target", str(exc)) from None
    known = {str(t.get("telegram")) for t in old if "telegram" in t}
    owner = caller(request).owner
    for number, target in enumerate(targets, 1):
        chat = target.get("telegram")
        if chat is None or str(chat) in known:
            continue
        if not await asyncio.to_thread(ctx.store.links.linked, owner, int(chat)):
            raise ApiError(
                422, "invalid_target",
                f"target {number}: this chat has not linked itself to your key; get a code "
                "from POST /v1/telegram/links and send it to the bot from the chat: /link CODE",
            )  # fmt: skip
    return tuple(targets)


async def list_subscriptions(request: web.Request) -> web.Response:
    subs = await asyncio.to_thread(context(request).store.subscriptions, owner_scope(request))
    return web.json_response({"subscriptions": [shown(request, sub) for sub in subs]})


async def create_subscription(request: web.Request) -> web.Response:
    fields = read_fields(await read_body(request), create=True)
    assert fields.query is not None  # required
    public = fields.id or new_subscription_id()
    await _check_query(request, fields.query)
    sub = StoredSubscription(
        id=stored_id(request, public),
        query=fields.query,
        name=fields.name or public,
        targets=await _targets(request, fields.targets or []),
        paused=bool(fields.paused),
        mode=fields.mode or "auto",
        owner=caller(request).owner,
    )
    try:
        created = await asyncio.to_thread(context(request).store.create, sub)
    except SubscriptionExistsError:
        raise ApiError(409, "conflict", f'you already have a subscription "{public}"') from None
    except QuotaError as exc:
        raise ApiError(422, "limit_reached", str(exc)) from None
    return web.json_response(shown(request, created), status=201)


async def _owned(request: web.Request) -> StoredSubscription:
    given = request.match_info["id"]
    ctx = context(request)
    sub = await asyncio.to_thread(ctx.store.get, stored_id(request, given), owner_scope(request))
    if sub is None:
        raise ApiError(404, "not_found", f'no subscription "{given}"')
    return sub


async def get_subscription(request: web.Request) -> web.Response:
    return web.json_response(shown(request, await _owned(request)))


async def update_subscription(request: web.Request) -> web.Response:
    old = await _owned(request)
    fields = read_fields(await read_body(request), create=False)
    query = fields.query if fields.query is not None else old.query
    if query != old.query:
        await _check_query(request, query)
    new = replace(
        old,
        query=query,
        name=fields.name if fields.name is not None else old.name,
        targets=old.targets if fields.targets is None else await _targets(
            request, fields.targets, old.targets
        ),
        paused=old.paused if fields.paused is None else fields.paused,
        mode=fields.mode or old.mode,
    )  # fmt: skip
    try:
        saved = await asyncio.to_thread(context(request).store.put, new)
    except QuotaError as exc:
        raise ApiError(422, "limit_reached", str(exc)) from None
    return web.json_response(shown(request, saved))


async def delete_subscription(request: web.Request) -> web.Response:
    sub = await _owned(request)
    await asyncio.to_thread(context(request).store.delete, sub.id)
    return web.Response(status=204)


async def test_query(request: web.Request) -> web.Response:
    """Run a query over recent posts: rate-limited per key, on the tests' own small pool,
    bounded in posts and time (a cut-short result says ``truncated``)."""
    ctx = context(request)
    fields = query_test_fields(await read_body(request))
    wait = await asyncio.to_thread(ctx.test_budget.take, caller(request).id)
    if wait is not None:
        return error_response(
            429, "rate_limited",
            f"at most {ctx.limits.test_per_minute} tests a minute (TGWATCH_LIMIT_TEST_PER_MINUTE)",
            headers={"Retry-After": str(max(1, round(wait)))},
        )  # fmt: skip
    entities = await asyncio.to_thread(stored_entities, ctx.client)
    channels = [c.lstrip("@").lower() for c in fields.channels] if fields.channels else None
    job = partial(
        run_test, ctx.client, fields.query, entities, channels=channels,
        per_channel=fields.limit, max_posts=ctx.limits.test_posts,
        seconds=ctx.limits.test_seconds, regex_ms=ctx.limits.regex_ms,
    )  # fmt: skip
    try:
        result = await asyncio.get_running_loop().run_in_executor(ctx.tests, job)
    except QueryError as exc:
        raise ApiError(400, "invalid_query", exc.message, position=exc.position) from None
    return web.json_response(
        {
            "scanned": result.scanned,
            "channels": result.channels,
            "total_hits": result.total_hits,
            "truncated": result.truncated,
            "hits": [hit.to_dict() for hit in result.hits[: constants.TEST_API_MAX_HITS]],
        }
    )
