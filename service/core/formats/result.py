"""The outcome of parsing one input: the posts, the items set aside and why, and FormatError."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.core.post import Post

# A rejected item is kept for inspection, not for replay: 2000 characters show what was wrong
# with it while a file of huge malformed items cannot blow up memory or the Redis reject list.
RAW_LIMIT = 2000


class FormatError(ValueError):
    """The whole input is unusable (not JSON, not HTML, no known format); the message says why.

    Parsers also raise it for one malformed item; the ``parse_*`` functions over many items turn
    that into a ``Rejected`` entry and go on.
    """


def raw_excerpt(item: object, limit: int = RAW_LIMIT) -> str:
    """The offending item as text (JSON where possible), cut to ``limit`` characters."""
    if isinstance(item, str):
        text = item
    else:
        try:
            text = json.dumps(item, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(item)
        except RecursionError:
            text = f"<{type(item).__name__} nested too deeply to show>"
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


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

    ``read`` counts every item examined, including ones skipped on purpose (service messages,
    updates that are not channel posts), so ``read - len(posts) - len(rejected)`` were skipped.
    Album items merged into one post are each counted once in ``read``.
    """

    posts: list[Post] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0

    def extend(self, other: ParseResult) -> None:
        """Add another result's posts, rejections and count to this one."""
        self.posts.extend(other.posts)
        self.rejected.extend(other.rejected)
        self.read += other.read
