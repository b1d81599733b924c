"""The API's Telegram links: how a tenant gets a chat's consent before its alerts go there.

``POST /v1/telegram/links`` gives a one-time code; someone in the chat sends ``/link <code>``
to the bot (a group's admin, for a group); from then on the tenant's subscriptions may target
that chat. ``GET`` lists the linked chats, ``DELETE`` unlinks one (and takes it out of every
subscription of the tenant). The chat can unlink itself too (``/unlink`` in the bot).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.api.common import caller, context
from service.api.decode import ApiError


async def new_link(request: web.Request) -> web.Response:
    owner = caller(request).owner
    code, ttl = await asyncio.to_thread(context(request).store.links.new_code, owner)
    return web.json_response(
        {"code": code, "expires_in": ttl, "send_to_bot": f"/link {code}"}, status=201
    )


async def list_links(request: web.Request) -> web.Response:
    owner = caller(request).owner
    chats = await asyncio.to_thread(context(request).store.links.chats, owner)
    return web.json_response({"chats": chats})


async def delete_link(request: web.Request) -> web.Response:
    raw = request.match_info["chat"]
    chat = raw.removeprefix("-")
    if not (chat.isascii() and chat.isdigit() and len(chat) <= 16):
        raise ApiError(404, "not_found", "no such linked chat")
    owner = caller(request).owner
    removed = await asyncio.to_thread(context(request).store.unlink_chat, owner, int(raw))
    if not removed:
        raise ApiError(404, "not_found", "no such linked chat")
    return web.Response(status=204)
