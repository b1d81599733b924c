"""What the core keeps in memory, kept in bounds: caches bounded in bytes, and big builds (a
compiled rule set, a rules file's nodes) made with the garbage collector paused.

Per-process caches: what the core keeps for speed (parsed and compiled queries, the keys of
words and of text chunks) stays under a budget whatever the input.

A cache counted in entries is not a bound: one entry may be a 20-byte word or a 2,000-character
query with its compiled tree, so 300,000 entries meant anything from megabytes to gigabytes.
``BoundedCache`` charges each entry an estimate of the bytes it holds (``size(key, value)``)
and, past its budget, evicts the oldest entries first. Reads are a plain ``dict.get`` (hot
paths call it through ``map`` at C speed); only inserts pay for the accounting.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What a dict entry costs beyond its key and value: the slot, the hash, the index, a share of
# the spare room a dict keeps (measured: ~50 bytes an entry on average).
ENTRY_OVERHEAD = 50
# Past its budget a cache evicts its oldest entries down to this share of it.
EVICT_TO = 0.9
_getsizeof = sys.getsizeof


def text_size(value: str) -> int:
    """Bytes a str holds (header included)."""
    return _getsizeof(value)


def tuple_size(value: tuple[Any, ...]) -> int:
    """Bytes of a tuple itself (its items not counted: shared, or counted by the caller)."""
    return _getsizeof(value)


def strings_size(values: Iterable[str]) -> int:
    """Bytes of a tuple of strings and the strings (as if none were shared: a bound)."""
    items = tuple(values)
    return _getsizeof(items) + sum(map(_getsizeof, items))


def deep_size(value: Any, limit: int = 10_000) -> int:
    """An estimate of the bytes ``value`` holds: the object and everything reachable through
    tuples, lists, sets, dicts and ``__slots__`` (at most ``limit`` objects; shared objects
    counted once). For caches of nested immutable data (parsed queries, rule nodes)."""
    seen: set[int] = set()
    stack = [value]
    total = 0
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += _getsizeof(item)
        if isinstance(item, str | bytes | int | float | bool) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, tuple | list | set | frozenset):
            stack.extend(item)
        else:
            for cls in type(item).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if hasattr(item, name):
                        stack.append(getattr(item, name))
            attributes = getattr(item, "__dict__", None)
            if attributes is not None:
                stack.extend(attributes.values())
    return total


class BoundedCache(Generic[K, V]):
    """A dict with a budget in bytes; the oldest entries go first when it is exceeded."""

    __slots__ = ("_data", "_size", "budget", "get", "used")

    def __init__(self, budget: int, size: Callable[[K, V], int]) -> None:
        self.budget = budget
        self._size = size
        self._data: dict[K, V] = {}
        self.get = self._data.get  # the plain dict's get: C speed
        self.used = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` (evicting the oldest entries past the budget)."""
        data = self._data
        if key in data:
            self.used -= self._size(key, data.pop(key)) + ENTRY_OVERHEAD
        cost = self._size(key, value) + ENTRY_OVERHEAD
        if cost > self.budget:
            return value  # bigger than the whole cache: not kept
        self.used += cost
        data[key] = value
        if self.used > self.budget:
            self._evict()
        return value

    def _evict(self) -> None:
        # Down to EVICT_TO of the budget in one pass from the front: popping entries one at a
        # time would make each later pass skip the slots the earlier ones emptied (quadratic).
        data, size, target = self._data, self._size, self.budget * EVICT_TO
        gone = []
        for key, value in data.items():
            if self.used <= target:
                break
            self.used -= size(key, value) + ENTRY_OVERHEAD
            gone.append(key)
        for key in gone:
            del data[key]

    def clear(self) -> None:
        self._data.clear()
        self.used = 0


def memoized(
    function: Callable[[K], V], budget: int, size: Callable[[K, V], int]
) -> Callable[[K], V]:
    """``function`` of one argument, cached in a ``BoundedCache`` (the ``lru_cache`` of this
    project: bounded in bytes, not in entries). The cache is the wrapper's ``cache``."""
    cache: BoundedCache[K, V] = BoundedCache(budget, size)
    get, put = cache.get, cache.put

    def cached(key: K) -> V:
        found = get(key)
        if found is None:
            found = put(key, function(key))
        return found

    cached.cache = cache  # type: ignore[attr-defined]
    cached.cache_clear = cache.clear  # type: ignore[attr-defined]  # as lru_cache's
    cached.__doc__ = function.__doc__
    cached.__name__ = getattr(function, "__name__", "cached")
    return cached


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a big build, and none ever after over what it built.

    A compile (or a rules file's nodes) allocates millions of objects; each collection they
    trigger would walk them (and the rest of the heap) for nothing, which took as long as the
    compile itself at 100k rules, and re-enabling the collector with millions of objects in the
    youngest generation made the next allocation walk them all (~2 s for a 100k-rule file).
    Afterwards everything alive is frozen (``gc.freeze``): the collector never walks it again,
    where each full collection over a 100k-rule index stalled a worker for ~0.5-1 s. Frozen
    objects are still freed by reference counting when let go (an old index, a file's nodes);
    what the core builds holds no reference cycles, which alone would outlive it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
