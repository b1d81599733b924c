"""/watch, /list, /unwatch, /pause, /resume and /test: a chat's watches."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial

import redis
from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from service import constants
from service.bot.replies import code, cut, esc, join_limited, query_error, subscription_line
from service.bot.routers.common import say, subscriber_of
from service.bot.routers.links import owner_label
from service.config import LimitSettings
from service.core.query.parser import QueryError
from service.core.render import excerpt_html
from service.querytools import check_query, explain_lines, run_test, stored_entities
from service.store.quotas import RequestBudget
from service.store.subscribers import (
    QuotaError,
    StoredSubscription,
    SubscriberStore,
    SubscriptionExistsError,
    new_subscription_id,
)

# A watch made in the bot is named after its query, cut to this many characters.
NAME_CHARS = 60
# Each /test hit shows this much of its post.
TEST_EXCERPT_CHARS = 300


async def watch(
    message: Message,
    command: CommandObject,
    store: SubscriberStore,
    redis: redis.Redis,
    limits: LimitSettings,
) -> None:
    query = (command.args or "").strip()
    if not query:
        await say(message, "Usage: /watch <code>query</code>, e.g. <code>/watch ceasefire</code>")
        return
    entities = await asyncio.to_thread(stored_entities, redis)
    try:
        tree = await asyncio.to_thread(check_query, query, entities, regex_ms=limits.regex_ms)
    except QueryError as exc:
        await say(message, query_error(query, exc))
        return
    chat_id = message.chat.id
    await asyncio.to_thread(store.ensure_subscriber, subscriber_of(message), "telegram", chat_id)
    for _ in range(5):  # a new id collides once in millions; try again rather than fail
        sub = StoredSubscription(
            id=new_subscription_id(),
            query=query,
            name=cut(query, NAME_CHARS),
            targets=({"telegram": chat_id},),
            owner=subscriber_of(message),
        )
        try:
            await asyncio.to_thread(store.create, sub)
            break
        except SubscriptionExistsError:
            continue
        except QuotaError as exc:
            await say(message, f"❌ {esc(str(exc))}")
            return
    understood = "\n".join(explain_lines(tree))
    await say(
        message,
        join_limited(
            [
                f"✅ Watching {code(sub.id)}: alerts come to this chat.",
                "Understood as:",
                f"<pre>{esc(cut(understood, 2500))}</pre>",
                f"Stop with /unwatch {esc(sub.id)}",
            ]
        ),
    )


async def list_(message: Message, store: SubscriberStore) -> None:
    subs = await asyncio.to_thread(store.for_chat, message.chat.id)
    others = await asyncio.to_thread(store.delivered_to_chat, message.chat.id)
    if not subs and not others:
        await say(message, "No watches yet. Start one with /watch <code>query</code>.")
        return
    parts = [f"<b>Your watches ({len(subs)})</b>", *(subscription_line(sub) for sub in subs)]
    if not subs:
        parts = ["No watches of your own. Start one with /watch <code>query</code>."]
    if others:
        parts.append(f"<b>Also delivered here ({len(others)})</b> — /unwatch <code>id</code>")
        parts.extend(
            f"• {code(sub.id)} {esc(cut(sub.name, 100))}"
            + (f" <i>({esc(owner_label(sub.owner))})</i>" if sub.owner else "")
            for sub in others
        )
    await say(message, join_limited(parts))


async def unwatch(message: Message, command: CommandObject, store: SubscriberStore) -> None:
    sub_id = (command.args or "").strip()
    if not sub_id:
        await say(message, "Usage: /unwatch <code>id</code> (see /list)")
        return
    done = await asyncio.to_thread(store.unwatch_for_chat, sub_id, message.chat.id)
    if done is None:
        await say(message, f"No watch {code(cut(sub_id, 80))} here. See /list.")
    elif done == "deleted":
        await say(message, f"🗑 Stopped {code(cut(sub_id, 80))}.")
    else:
        await say(message, f"🗑 {code(cut(sub_id, 80))} no longer sends its alerts here.")


async def _set_paused(
    message: Message, arg: str | None, store: SubscriberStore, paused: bool
) -> None:
    target = (arg or "").strip()
    verb = "Paused" if paused else "Resumed"
    if target in ("", "all"):
        subs = await asyncio.to_thread(store.for_chat, message.chat.id)
        ids = [sub.id for sub in subs]
    else:
        sub = await asyncio.to_thread(store.find_for_chat, target, message.chat.id)
        if sub is None:
            await say(message, f"No watch {code(cut(target, 80))} here. See /list.")
            return
        ids = [sub.id]
    changed = await asyncio.to_thread(store.set_paused, ids, paused, subscriber_of(message))
    if not changed:
        await say(
            message, f"Nothing to change: {'all already ' + verb.lower() if ids else 'no watches'}."
        )
        return
    await say(
        message,
        join_limited(
            [f"{'⏸' if paused else '▶️'} {verb} {len(changed)}:", *(code(i) for i in changed)]
        ),
    )


async def pause(message: Message, command: CommandObject, store: SubscriberStore) -> None:
    await _set_paused(message, command.args, store, True)


async def resume(message: Message, command: CommandObject, store: SubscriberStore) -> None:
    await _set_paused(message, command.args, store, False)


async def test(
    message: Message,
    *,
    command: CommandObject,
    redis: redis.Redis,
    limits: LimitSettings,
    test_budget: RequestBudget,
    tests: Executor,
) -> None:
    query = (command.args or "").strip()
    if not query:
        await say(message, "Usage: /test <code>query</code> — tries it on recent posts")
        return
    wait = await asyncio.to_thread(test_budget.take, str(message.chat.id))
    if wait is not None:
        await say(message, f"⏳ Too many tests: try again in {max(1, round(wait))} s.")
        return
    entities = await asyncio.to_thread(stored_entities, redis)
    job = partial(
        run_test, redis, query, entities, max_hits=constants.TEST_BOT_MAX_HITS,
        max_posts=limits.test_posts, seconds=limits.test_seconds, regex_ms=limits.regex_ms,
    )  # fmt: skip
    try:
        result = await asyncio.get_running_loop().run_in_executor(tests, job)
    except QueryError as exc:
        await say(message, query_error(query, exc))
        return
    head = (
        f"🔎 {result.total_hits} hit{'s' if result.total_hits != 1 else ''} in "
        f"{result.scanned} recent posts of {result.channels} channel(s)"
    )
    parts = [esc(head)]
    for hit in result.hits:
        body, _ = excerpt_html(hit.post.text, hit.highlights, TEST_EXCERPT_CHARS)
        link = hit.post.link
        parts.append(
            f"\n<b>{esc(hit.post.channel_title or hit.post.channel)}</b> · "
            f'<a href="{esc(link)}">{esc(link.removeprefix("https://"))}</a>\n{body}'
        )
    if result.total_hits > len(result.hits):
        parts.append(esc(f"(showing the newest {len(result.hits)})"))
    if result.truncated:
        parts.append(esc("(stopped early: the test's time or post budget ran out)"))
    if result.total_hits:
        parts.append(f"\nSave it with /watch {esc(cut(query, 300))}")
    await say(message, join_limited(parts))


def build_router() -> Router:
    """A new router with this module's handlers (a router joins one dispatcher only)."""
    router = Router(name="watch")
    router.message.register(watch, Command("watch"))
    router.message.register(list_, Command("list"))
    router.message.register(unwatch, Command("unwatch"))
    router.message.register(pause, Command("pause"))
    router.message.register(resume, Command("resume"))
    router.message.register(test, Command("test"))
    return router
