"""A local stand-in for ``t.me/s/<channel>``: preview pages built from posts a test controls.

Pages follow the real markup (see docs/telegram-formats.md (b) and the shared fixture page):
blocks oldest to newest, about ``page_size`` message ids a page (an album counts all its items),
``<link rel="prev">`` and the ``data-before`` "more" link when older posts exist, ``rel="next"``
and ``data-after`` when newer ones do, ``.tme_no_messages_found`` past the start of history, and
a 302 for an unknown channel. Tests can edit a post (it then shows the ``edited`` marker), script
failures (429 with Retry-After, 500s), make a channel answer garbage, serve a fixed page, slow the
answers down, and read the requests made.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

START = datetime(2024, 9, 21, 5, 30, tzinfo=UTC)


@dataclass
class FakePost:
    """One post as the preview shows it; ``album`` lists the ids of further album items."""

    id: int
    text: str
    date: datetime
    edited: bool = False
    album: tuple[int, ...] = ()
    views: int = 1000

    @property
    def ids(self) -> tuple[int, ...]:
        return (self.id, *self.album)


@dataclass
class FakeChannel:
    name: str
    title: str
    chat_id: int  # bare id, as in data-view
    posts: dict[int, FakePost] = field(default_factory=dict)
    garbage: str | None = None  # served instead of any page when set
    raw_page: str | None = None  # served for the bare URL when set

    def next_id(self) -> int:
        return max((i for post in self.posts.values() for i in post.ids), default=0) + 1


@dataclass
class Scripted:
    status: int
    headers: dict[str, str]
    body: str


class FakePreviewServer:
    """Start with ``await start()``; ``base_url`` is what the poller's ``base_url`` takes."""

    def __init__(self, page_size: int = 20) -> None:
        self.page_size = page_size
        self.channels: dict[str, FakeChannel] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.delay = 0.0  # seconds each answer waits (to observe concurrency)
        self.in_flight = 0
        self.max_in_flight = 0
        self._scripted: dict[str, deque[Scripted]] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- test controls -------------------------------------------------------------------------
    def add_channel(self, name: str, title: str | None = None, chat_id: int = 1001) -> FakeChannel:
        channel = FakeChannel(name=name, title=title or name.title(), chat_id=chat_id)
        self.channels[name.lower()] = channel
        return channel

    def channel(self, name: str) -> FakeChannel:
        return self.channels[name.lower()]

    def add_posts(self, name: str, count: int, text: str = "Post number {id}") -> list[FakePost]:
        """Append ``count`` text posts with consecutive ids, a minute apart."""
        return [self.add_post(name, text) for _ in range(count)]

    def add_post(self, name: str, text: str = "Post number {id}", album_size: int = 1) -> FakePost:
        channel = self.channel(name)
        first = channel.next_id()
        post = FakePost(
            id=first,
            text=text.format(id=first),
            date=START + timedelta(minutes=first),
            album=tuple(range(first + 1, first + album_size)),
        )
        channel.posts[first] = post
        return post

    def edit_post(self, name: str, post_id: int, text: str) -> None:
        post = self.channel(name).posts[post_id]
        post.text = text
        post.edited = True

    def delete_post(self, name: str, post_id: int) -> None:
        del self.channel(name).posts[post_id]

    def fail_next(
        self,
        name: str,
        status: int,
        *,
        retry_after: int | str | None = None,
        body: str = "",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests for ``name`` with ``status``."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        queue = self._scripted.setdefault(name.lower(), deque())
        queue.extend(Scripted(status, headers, body) for _ in range(times))

    def requested(self, name: str) -> list[dict[str, str]]:
        """The query of each request made for ``name``'s page, in order."""
        return [query for path, query in self.requests if path.lower() == f"/s/{name.lower()}"]

    # --- server --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/s/{channel}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._answer(request)
        finally:
            self.in_flight -= 1

    def _answer(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["channel"].lower()
        scripted = self._scripted.get(name)
        if scripted:
            item = scripted.popleft()
            return web.Response(status=item.status, headers=item.headers, text=item.body)
        channel = self.channels.get(name)
        if channel is None:
            raise web.HTTPFound(location=f"/{request.match_info['channel']}")
        if channel.garbage is not None:
            return web.Response(text=channel.garbage, content_type="text/html")
        before = request.query.get("before")
        if channel.raw_page is not None and before is None:
            return web.Response(text=channel.raw_page, content_type="text/html")
        page = render_page(channel, self.page_size, int(before) if before else None)
        return web.Response(text=page, content_type="text/html")


# --- markup --------------------------------------------------------------------------------------
def _page_posts(channel: FakeChannel, page_size: int, before: int | None) -> list[FakePost]:
    candidates = sorted(
        (post for post in channel.posts.values() if before is None or post.id < before),
        key=lambda post: post.id,
        reverse=True,
    )
    chosen: list[FakePost] = []
    ids = 0
    for post in candidates:
        if ids >= page_size:
            break
        chosen.append(post)
        ids += len(post.ids)
    return sorted(chosen, key=lambda post: post.id)


def _text_html(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "&#39;").replace("\n", "<br/>")


def _data_view(channel: FakeChannel, post: FakePost) -> str:
    view = {
        "c": -channel.chat_id,
        "p": f"{post.id}g" if post.album else post.id,
        "t": int(post.date.timestamp()),
        "h": "0123456789abcdef01",
    }
    return base64.b64encode(json.dumps(view, separators=(",", ":")).encode()).decode()


def render_block(channel: FakeChannel, post: FakePost) -> str:
    """One message block in the shape of the real page (see the shared fixture)."""
    name, link = channel.name, f"https://t.me/{channel.name}/{post.id}"
    title = html.escape(channel.title)
    media = ""
    if post.album:
        items = "".join(
            f'<a class="tgme_widget_message_photo_wrap grouped_media_wrap blured js-message_photo" '
            f'href="https://t.me/{name}/{item}?single" style="width:400px;background-image:'
            f"url('https://cdn4.cdn-telegram.org/file/fake{item}.jpg')\"></a>"
            for item in post.ids
        )
        media = (
            f'<div class="tgme_widget_message_grouped_wrap js-message_grouped_wrap" '
            f'data-margin-w="2" data-margin-h="2" style="width:800px;">'
            f'<div class="tgme_widget_message_grouped js-message_grouped" '
            f'style="padding-top:75%">{items}</div></div>'
        )
    text = (
        '<div class="tgme_widget_message_text js-message_text" dir="auto">'
        f"{_text_html(post.text)}</div>"
    )
    edited = "edited &nbsp;" if post.edited else ""
    return f"""<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{name}/{post.id}" data-view="{_data_view(channel, post)}">
<div class="tgme_widget_message_user"><a href="https://t.me/{name}"><i class="tgme_widget_message_user_photo bgcolor1" data-content="{title[:1]}"><img src="https://cdn4.cdn-telegram.org/file/avatar.jpg"></i></a></div>
<div class="tgme_widget_message_bubble">
<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" href="https://t.me/{name}"><span dir="auto">{title}</span></a></div>
{media}{text}
<div class="tgme_widget_message_footer compact js-message_footer"><div class="tgme_widget_message_info short js-message_info"><span class="tgme_widget_message_views">{post.views}</span><span class="copyonly"> views</span><span class="tgme_widget_message_meta">{edited}<a class="tgme_widget_message_date" href="{link}"><time datetime="{post.date.isoformat()}" class="time">{post.date:%H:%M}</time></a></span></div></div>
</div></div></div>
"""  # noqa: E501


def render_page(channel: FakeChannel, page_size: int, before: int | None) -> str:
    """The page ``/s/<channel>`` (``before`` None) or ``/s/<channel>?before=N``."""
    posts = _page_posts(channel, page_size, before)
    all_ids = [i for post in channel.posts.values() for i in post.ids]
    name, title = channel.name, html.escape(channel.title)
    head_links, top, bottom, blocks = [], "", "", ""
    if posts:
        smallest, largest = posts[0].id, max(posts[-1].ids)
        if any(i < smallest for i in all_ids):
            head_links.append(f'<link rel="prev" href="/s/{name}?before={smallest}">')
            top = (
                f'<div class="tgme_widget_message_centered js-messages_more_wrap">'
                f'<a href="/s/{name}?before={smallest}" class="tme_messages_more '
                f'js-messages_more" data-before="{smallest}"></a></div>'
            )
        if any(i > largest for i in all_ids):
            head_links.append(f'<link rel="next" href="/s/{name}?after={largest}">')
            bottom = (
                f'<div class="tgme_widget_message_centered js-messages_more_wrap">'
                f'<a href="/s/{name}?after={largest}" class="tme_messages_more '
                f'js-messages_more" data-after="{largest}"></a></div>'
            )
        blocks = "".join(render_block(channel, post) for post in posts)
    else:
        blocks = '<div class="tme_no_messages_found">No posts found</div>'
    links = "\n    ".join(head_links)
    return f"""<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title} – Telegram</title>
    <meta property="og:title" content="{title}">
    <meta property="og:site_name" content="Telegram">
    {links}
    <link href="//telegram.org/css/widget-frame.css" rel="stylesheet" media="screen">
  </head>
  <body class="widget_frame_base tgme_webpage">
    <main class="tgme_main">
      <div class="tgme_container">
        <section class="tgme_right_column">
          <div class="tgme_channel_info">
            <div class="tgme_channel_info_header">
              <div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>
              <div class="tgme_channel_info_header_username"><a href="https://t.me/{name}">@{name}</a></div>
            </div>
          </div>
        </section>
        <section class="tgme_channel_history js-message_history">
{top}
{blocks}{bottom}
        </section>
      </div>
    </main>
  </body>
</html>
"""
