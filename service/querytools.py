"""Check, explain and try a subscriber's query: what the bot and the HTTP API share.

Parsing, compiling and matching are the rule engine's (``service.core.query``); this module only
adds the watched entities stored in Redis and the recent posts of the post store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from service import constants
from service.core.model import Highlight, WatchedEntity
from service.core.post import Post
from service.core.query import parser as q
from service.core.query.budget import check_regex_cost
from service.core.query.index import RuleIndex
from service.core.query.match import word_key
from service.core.text import is_cyrillic
from service.store.posts import PostStore
from service.store.rules import RuleStore

_TEST_ID = "test"


def stored_entities(client: redis.Redis) -> dict[str, WatchedEntity]:
    """The watched entities of the rule set, by id."""
    return RuleStore(client).entities()


def check_query(
    query: str, entities: dict[str, WatchedEntity], *, regex_ms: float | None = None
) -> q.Node:
    """The parsed query; QueryError (message, position) when it does not parse, names an
    entity that is not watched, or (with ``regex_ms``) holds a regex costlier than that."""
    tree = q.parse(query)
    for term, _positive in q.terms(tree):
        if isinstance(term, q.Field) and term.name == "entity" and term.value not in entities:
            known = ", ".join(sorted(entities)) or "none yet"
            raise q.QueryError(f'unknown entity "{term.value}" (watched: {known})', term.position)
    if regex_ms is not None:
        check_regex_cost(tree, regex_ms)
    return tree


def explain_lines(tree: q.Node) -> list[str]:
    """How the query was understood: its tree, with the lemma each Cyrillic word matches by."""
    lines = q.render(tree)
    notes = []
    for term, _positive in q.terms(tree):
        if isinstance(term, q.Word) and is_cyrillic(term.norm) and not term.exact:
            lemma = word_key(term.norm)
            if lemma != term.norm:
                notes.append(f"{term.norm} → any form of {lemma}")
    return lines + notes


@dataclass(frozen=True, slots=True)
class Hit:
    post: Post
    highlights: tuple[Highlight, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "post": self.post.key,
            "link": self.post.link,
            "channel": self.post.channel,
            "date": self.post.date.isoformat(),
            "text": self.post.text,
            "highlights": [h.to_dict() for h in self.highlights],
        }


@dataclass
class TestResult:
    scanned: int = 0
    channels: int = 0
    hits: list[Hit] = field(default_factory=list)
    total_hits: int = 0
    truncated: bool = False  # the post or time budget ran out before every post was scanned


def run_test(
    client: redis.Redis,
    query: str,
    entities: dict[str, WatchedEntity],
    *,
    channels: list[str] | None = None,
    per_channel: int = constants.TEST_POSTS_PER_CHANNEL,
    max_hits: int = constants.TEST_API_MAX_HITS,
    max_posts: int = constants.TEST_POSTS_MAX,
    seconds: float = constants.TEST_SECONDS_MAX,
    regex_ms: float | None = constants.REGEX_COST_MAX_MS,
) -> TestResult:
    """Run ``query`` over the recent stored posts (newest first); QueryError if it is invalid.
    At most ``max_posts`` posts and ``seconds`` of matching: past either, the result so far is
    returned with ``truncated`` set."""
    deadline = time.monotonic() + seconds
    check_query(query, entities, regex_ms=regex_ms)
    index = RuleIndex.from_queries([(_TEST_ID, query)], entities.values())
    store = PostStore(client)
    names = channels if channels is not None else store.channels()
    result = TestResult(channels=min(len(names), constants.TEST_MAX_CHANNELS))
    hits: list[Hit] = []
    for channel in names[: constants.TEST_MAX_CHANNELS]:
        if result.scanned >= max_posts or time.monotonic() > deadline:
            result.truncated = True
            break
        for version in store.recent(channel, min(per_channel, max_posts - result.scanned)):
            if time.monotonic() > deadline:
                result.truncated = True
                break
            result.scanned += 1
            for match in index.match(version.post, version.enrichment):
                hits.append(Hit(version.post, match.highlights))
    hits.sort(key=lambda hit: hit.post.date, reverse=True)
    result.total_hits = len(hits)
    result.hits = hits[:max_hits]
    return result
