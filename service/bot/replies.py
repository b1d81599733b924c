"""Bot replies in Telegram HTML: every piece of user text escaped, never over 4096 characters."""

from __future__ import annotations

import html
from collections.abc import Iterable

from service import constants
from service.core.query.parser import QueryError
from service.core.render import utf16_len
from service.store.subscribers import StoredSubscription

esc = html.escape
# Room kept for the "… and N more" line of a cut reply.
_TAIL_RESERVE = 40


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def cut(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` characters (escape it afterwards)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def join_limited(parts: Iterable[str], limit: int = constants.TELEGRAM_MESSAGE_LIMIT) -> str:
    """Join HTML parts with newlines, each part whole (its tags balanced), stopping before the
    message would exceed ``limit`` with an "… and N more" line; markup counts too, so the
    visible text is shorter still."""
    items = list(parts)
    out: list[str] = []
    used = 0
    for index, part in enumerate(items):
        size = utf16_len(part) + (1 if out else 0)
        last = index == len(items) - 1
        if used + size > (limit if last else limit - _TAIL_RESERVE):
            out.append(esc(f"… and {len(items) - index} more"))
            break
        out.append(part)
        used += size
    return "\n".join(out)


def query_error(query: str, error: QueryError) -> str:
    """The error, and the query with a caret under the position."""
    shown = cut(query, 300)
    caret = " " * min(error.position, len(shown)) + "^"
    return join_limited(
        [
            f"❌ {esc(error.message)} at position {error.position}",
            f"<pre>{esc(shown)}\n{caret}</pre>",
        ]
    )


def subscription_line(sub: StoredSubscription) -> str:
    flags = []
    if sub.paused:
        flags.append("paused")
    if sub.muted():
        flags.append("muted")
    if sub.mode != "auto":
        flags.append(sub.mode)
    state = f" <i>({esc(', '.join(flags))})</i>" if flags else ""
    return f"• {code(sub.id)} {esc(cut(sub.query, 300))}{state}"
