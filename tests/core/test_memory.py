"""Caches bounded in bytes: the oldest entries go past the budget, whatever the entries' size;
the query caches stay under theirs however many distinct queries come."""

from __future__ import annotations

import pytest

from service.core.memory import ENTRY_OVERHEAD, BoundedCache, deep_size, memoized, text_size
from service.core.query import index, parser
from service.core.query.chunks import ChunkKeys


def test_the_oldest_entries_go_when_the_budget_is_exceeded() -> None:
    cache: BoundedCache[str, str] = BoundedCache(1000, lambda key, value: len(value))
    cache.put("a", "x" * 300)
    cache.put("b", "x" * 300)
    assert cache.used == 600 + 2 * ENTRY_OVERHEAD
    cache.put("c", "x" * 300)  # 3 * 400 > 1000: "a" goes
    assert "a" not in cache and cache.get("b") and cache.get("c")
    assert cache.used <= cache.budget
    cache.put("huge", "x" * 5000)  # larger than the whole cache: not kept, nothing evicted
    assert "huge" not in cache and len(cache) == 2


def test_replacing_an_entry_charges_it_once() -> None:
    cache: BoundedCache[str, str] = BoundedCache(10_000, lambda key, value: len(value))
    for _ in range(5):
        cache.put("a", "x" * 100)
    assert cache.used == 100 + ENTRY_OVERHEAD


def test_memoized_computes_once_and_stays_bounded() -> None:
    calls: list[str] = []

    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    cached = memoized(upper, 2_000, lambda key, value: text_size(key) + text_size(value))
    assert cached("abc") == cached("abc") == "ABC"
    assert calls == ["abc"]
    for n in range(1000):
        cached(f"word{n}" * 10)
    assert cached.cache.used <= 2_000  # type: ignore[attr-defined]


def test_deep_size_follows_slots_and_containers() -> None:
    small, large = deep_size(parser.parse("a")), deep_size(parser.parse(" OR ".join("ab" * 50)))
    assert 0 < small < large


def test_compiled_and_parsed_queries_stay_under_their_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index._COMPILED, "budget", 200_000)
    monkeypatch.setattr(parser._PARSED, "budget", 100_000)
    index._COMPILED.clear()
    parser._PARSED.clear()
    for n in range(500):  # long distinct queries: ~24 KB each compiled, were kept forever
        query = " OR ".join(f"w{n}x{k}" for k in range(60))
        parser.parse(query)  # validating keeps the tree (a compile next may find it)
        index.RuleIndex.from_queries([("s", query)])
    assert index._COMPILED.used <= 200_000
    assert parser._PARSED.used <= 100_000
    assert index._COMPILED.get(query) is not None  # the latest is kept


def test_chunk_keys_stay_under_their_budget() -> None:
    chunks = ChunkKeys(budget=50_000)
    for n in range(2000):
        chunks.keys({f"{'x' * 500}{n}", f"word{n},"})
    assert chunks._cache.used <= 50_000
    # Chunks of several tokens keep their tokens (offsets) with their keys.
    assert chunks.entries("talks,truce") == (
        (0, 5, "talks", ("talks",)), (6, 11, "truce", ("truce",)))  # fmt: skip
