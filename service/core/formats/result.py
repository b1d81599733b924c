"""The outcome of parsing one input: the posts, the items set aside and why, and FormatError."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.core.post import Post

# A rejected item is kept for inspection, not for replay: 2000 characters show what was wrong
# with it while a file of huge malformed items cannot blow up memory or the Redis reject list.
RAW_LIMIT = 2000


# Why an item was left out on purpose (counted in ``ParseResult.skipped``, never stored):
# - service: a message a person does not read as a post (pins, joins, title or photo changes,
#   giveaway notices, boosts, gifts, video chats, ...): no text, no caption, no media;
# - unsupported: content the source cannot show (the export's "unsupported" items, preview
#   blocks that only say "Please open Telegram to view this post");
# - not_channel_post: an update or a chat that is not a channel's (private chats, callbacks).
SKIP_REASONS = ("service", "unsupported", "not_channel_post")


class FormatError(ValueError):
    """The whole input is unusable (not JSON, not HTML, no known format); the message says why.

    Parsers also raise it for one malformed item; the ``parse_*`` functions over many items turn
    that into a ``Rejected`` entry and go on.
    """


# An unexpected exception's message is cut to this: it names the problem, not the whole item.
REASON_LIMIT = 300


def printable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot hold (lone surrogates, undecodable bytes that were
    kept as surrogate escapes) written as backslash escapes, so it can be stored and shown."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def raw_excerpt(item: object, limit: int = RAW_LIMIT) -> str:
    """The offending item as text (JSON where possible), cut to ``limit`` characters."""
    if isinstance(item, str):
        text = item[: limit * 2]
    else:
        try:
            text = json.dumps(item, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(item)
        except RecursionError:
            text = f"<{type(item).__name__} nested too deeply to show>"
    text = printable(text)
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def failure_reason(exc: BaseException) -> str:
    """Why an item failed, for a rejection: the project's own errors say it themselves; anything
    else a parser did not foresee is named by its type."""
    if isinstance(exc, FormatError):
        reason = str(exc)
    elif isinstance(exc, RecursionError):
        reason = "nested too deeply"
    else:
        reason = f"malformed ({type(exc).__name__}: {exc})"
    return printable(reason[:REASON_LIMIT])


@dataclass(frozen=True)
class Rejected:
    """One item set aside: which input (``source``), where in it (``index``), why, and what.

    ``index`` is the item's position in the input (0-based list index, or 1-based line number
    for JSON lines); a string names a nested position such as ``"chats/2/messages/7"``.
    """

    source: str
    index: int | str
    reason: str
    raw: str

    def __post_init__(self) -> None:
        # Whatever the input held, a rejection must be storable and printable as UTF-8.
        object.__setattr__(self, "source", printable(self.source))
        object.__setattr__(self, "reason", printable(self.reason))
        object.__setattr__(self, "raw", printable(self.raw))
        if isinstance(self.index, str):
            object.__setattr__(self, "index", printable(self.index))

    @classmethod
    def of(cls, source: str, index: int | str, reason: str, item: object) -> Rejected:
        """Build a rejection, turning the item into truncated text."""
        return cls(source=source, index=index, reason=reason, raw=raw_excerpt(item))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "index": self.index, "reason": self.reason, "raw": self.raw}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rejected:
        index = data["index"]
        if not isinstance(index, int | str) or isinstance(index, bool):
            raise ValueError(f"Rejected.index must be int or str, not {type(index).__name__}")
        return cls(
            source=str(data["source"]),
            index=index,
            reason=str(data["reason"]),
            raw=str(data.get("raw", "")),
        )


@dataclass
class ParseResult:
    """Posts parsed from one input, the items rejected, and how many items were looked at.

    ``read`` counts every item examined, including ones skipped on purpose; ``skipped`` counts
    those by reason (see ``SKIP_REASONS``). Album items merged into one post are each counted
    once in ``read``.
    """

    posts: list[Post] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count an item left out on purpose."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def extend(self, other: ParseResult) -> None:
        """Add another result's posts, rejections and counts to this one."""
        self.posts.extend(other.posts)
        self.rejected.extend(other.rejected)
        self.read += other.read
        for reason, count in other.skipped.items():
            self.skip(reason, count)
