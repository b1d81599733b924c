"""The API's channel routes: what the preview poller polls; admins add and remove channels."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.api.common import context
from service.api.decode import ApiError, field, read_body
from service.store import watchlist
from service.store.posts import PostStore


async def list_channels(request: web.Request) -> web.Response:
    ctx = context(request)
    dynamic = await asyncio.to_thread(watchlist.channels, ctx.client)
    stored = await asyncio.to_thread(PostStore(ctx.client).channels)
    static = sorted(c.lower() for c in ctx.static_channels)
    return web.json_response(
        {
            "polled": sorted(set(static) | set(dynamic)),
            "added": dynamic,
            "configured": static,
            "stored": stored,
        }
    )


async def add_channel(request: web.Request) -> web.Response:
    raw = field(await read_body(request), "channel", str, required=True)
    try:
        name, new = await asyncio.to_thread(watchlist.add_channel, context(request).client, raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_channel", str(exc)[:200]) from None
    return web.json_response({"channel": name, "added": new}, status=201 if new else 200)


async def remove_channel(request: web.Request) -> web.Response:
    try:
        name, was = await asyncio.to_thread(
            watchlist.remove_channel, context(request).client, request.match_info["name"]
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_channel", str(exc)[:200]) from None
    if not was:
        raise ApiError(404, "not_found", f'channel "{name}" is not in the list')
    return web.Response(status=204)
