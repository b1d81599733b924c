"""The keys of text without a document: per token (its lemmas and forms) and per
whitespace-separated chunk (``ChunkKeys``, which an index keeps with its rule prefixes), both
cached, so preparing a post is a split and a few dictionary look-ups. Chunks are tokenized by
``service.core.text``, as every other text is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from service.core.memory import BoundedCache, memoized, text_size, tuple_size
from service.core.morphology import lemmas
from service.core.text import (
    clear_caches,
    is_cyrillic,
    single_token,
    token_spans,
)

Span = tuple[int, int]
# A prefix term's key: "*" never occurs in a word or field key.
PREFIX_SIGIL = "*"

# Budgets of the per-process caches of text keys. Each entry is charged what it adds: its tuple
# and the strings no other cache holds (a token's norm is the tokenizer's own string; its lemmas
# are morphology's), which tracemalloc puts at ~100 bytes a word's keys and ~130 a chunk's keys.
# A language's frequent forms fit well within these (~200k words each). The tokenizer bounds its
# own cache of runs (``service.core.text.RUN_CACHE_MAX``).
TOKEN_KEYS_CACHE_BYTES = 24 * 1024 * 1024
CHUNK_CACHE_BYTES = 32 * 1024 * 1024


def _token_keys(norm: str) -> tuple[str, ...]:
    """The keys a text token answers to: every lemma plus ``=form`` for Cyrillic, else itself."""
    if not is_cyrillic(norm):
        return (norm,)
    return (*sorted(lemmas(norm)), f"={norm}")


def _keys_size(norm: str, keys: tuple[str, ...]) -> int:
    # The tuple, and the =form key of a Cyrillic token (its only string of its own).
    return tuple_size(keys) + (text_size(keys[-1]) if len(keys) > 1 else 0)


token_keys = memoized(_token_keys, TOKEN_KEYS_CACHE_BYTES, _keys_size)


def prefix_key(prefix: str) -> str:
    """The document key of a rule prefix (``санкц`` → ``*санкц``): present when a token of the
    post starts with it."""
    return f"{PREFIX_SIGIL}{prefix}"


def clear_run_cache() -> None:
    """Forget the tokenized runs of text (``service.core.text`` keeps them) and token keys."""
    clear_caches()
    token_keys.cache.clear()  # type: ignore[attr-defined]


Entry = tuple[int, int, str, tuple[str, ...]]  # a token of a chunk: start, end, norm, keys


class _Multi(tuple[str, ...]):
    """The keys of a chunk that is not exactly one token (``word,``), carrying its tokens."""

    entries: tuple[Entry, ...]


class ChunkKeys:
    """The keys of whitespace-separated chunks of text (``word,`` ``(слова)``), cached: every
    token key of the chunk's runs, and ``*prefix`` for each of ``prefixes`` a token starts with.

    An index keeps one (its prefixes are its own); a post's keys are then the union of its
    distinct chunks' cached keys. Whitespace never occurs inside a token, so the runs of the
    chunks are exactly the runs of the text. Most chunks are one token (a word and nothing
    else), whose keys are the token's; the keys of the others (``_Multi``) carry their tokens,
    with their offsets. The cache is bounded in bytes (``CHUNK_CACHE_BYTES``)."""

    def __init__(self, prefixes: Iterable[str] = (), budget: int = CHUNK_CACHE_BYTES) -> None:
        self.prefixes = frozenset(prefixes)
        self._lengths = tuple(sorted({len(prefix) for prefix in self.prefixes}))
        self._slices = tuple(slice(0, length) for length in self._lengths)
        self._shortest = self._lengths[0] if self._lengths else 0
        self._heads = frozenset(prefix[: self._shortest] for prefix in self.prefixes)
        self._cache: BoundedCache[str, tuple[str, ...]] = BoundedCache(budget, _chunk_size)

    def keys(self, chunks: Collection[str]) -> set[str]:
        """The union of the keys of ``chunks`` (distinct chunks: duplicates only cost time)."""
        found = list(map(self._cache.get, chunks))
        if None in found:
            found = [self._miss(chunk) if keys is None else keys
                     for chunk, keys in zip(chunks, found, strict=True)]  # fmt: skip
        return set().union(*found)  # type: ignore[arg-type]

    def _miss(self, chunk: str) -> tuple[str, ...]:
        norm = single_token(chunk)
        keys: tuple[str, ...]
        if norm is not None:  # the chunk is one token: its keys are the token's
            keys = token_keys(norm)
            if self._lengths:
                keys = (*keys, *self._prefix_keys(norm))
        else:
            entries = tuple(self._entry(*found) for found in token_spans(chunk))
            multi = _Multi(dict.fromkeys(key for entry in entries for key in entry[3]))
            multi.entries = entries
            keys = multi
        return self._cache.put(chunk, keys)

    def _keys(self, chunk: str) -> tuple[str, ...]:
        keys = self._cache.get(chunk)
        return self._miss(chunk) if keys is None else keys

    def _entry(self, start: int, end: int, norm: str) -> Entry:
        keys = token_keys(norm)
        return (start, end, norm, (*keys, *self._prefix_keys(norm)) if self._lengths else keys)

    def entries(self, chunk: str) -> tuple[Entry, ...]:
        """The tokens of ``chunk``: (start, end, norm, keys), offsets within the chunk; a token's
        keys include the ``*prefix`` keys of the prefixes it starts with."""
        keys = self._keys(chunk)
        if type(keys) is _Multi:
            return keys.entries
        return ((0, len(chunk), single_token(chunk) or "", keys),)

    def sequence(self, chunks: list[str]) -> list[tuple[str, ...]]:
        """The keys of every token of ``chunks`` (in text order), one tuple per token."""
        get = self._cache.get
        found: list[tuple[str, ...]] = []
        for chunk in chunks:
            keys = get(chunk)
            if keys is None:
                keys = self._miss(chunk)
            if type(keys) is _Multi:
                found.extend(entry[3] for entry in keys.entries)
            else:
                found.append(keys)
        return found

    def spans(self, text: str, chunks: Iterable[str], key: str) -> list[Span]:
        """Spans in ``text`` (whose distinct chunks these are) of the tokens answering to
        ``key``, found through the chunks whose keys have it: cheaper than indexing every token
        of the text when a post has only a few matches to highlight."""
        found: list[Span] = []
        for chunk in chunks:
            if key not in self._keys(chunk):
                continue
            runs = [
                (start, end) for start, end, _norm, keys_ in self.entries(chunk) if key in keys_
            ]
            for at in _occurrences(text, chunk):
                found.extend((at + start, at + end) for start, end in runs)
        found.sort()
        return found

    def tokens(self, text: str, chunks: list[str]) -> list[Entry]:
        """(start, end, norm, keys) of every token of ``text``, whose chunks these are, in order
        (a token's keys include its ``*prefix`` keys)."""
        tokens: list[Entry] = []
        at = 0
        for chunk in chunks:
            at = text.find(chunk, at)  # only whitespace lies between the previous chunk and it
            tokens.extend((at + start, at + end, norm, keys)
                          for start, end, norm, keys in self.entries(chunk))  # fmt: skip
            at += len(chunk)
        return tokens

    def chunks_by_key(self, chunks: Iterable[str]) -> dict[str, list[str]]:
        """Which of ``chunks`` have each key."""
        by_key: dict[str, list[str]] = {}
        for chunk in chunks:
            for key in self._keys(chunk):
                by_key.setdefault(key, []).append(chunk)
        return by_key

    def _prefix_keys(self, norm: str) -> list[str]:
        if norm[: self._shortest] not in self._heads:  # most words start no prefix at all
            return []
        # norm[:n] past its length is norm itself, a prefix only if it has that length anyway.
        hits = self.prefixes.intersection(map(norm.__getitem__, self._slices))
        return [prefix_key(prefix) for prefix in hits] if hits else []

    @classmethod
    def for_prefixes(cls, prefixes: Iterable[str]) -> ChunkKeys:
        """A cache for these prefixes: the last one made when its prefixes are the same (an
        index recompiled after a change usually has the same), so it stays warm."""
        wanted = frozenset(prefixes)
        last = _LAST[0] if _LAST else None
        if last is None or last.prefixes != wanted:
            last = cls(wanted)
            _LAST[:] = [last]
        return last


def _chunk_size(chunk: str, keys: tuple[str, ...]) -> int:
    size = text_size(chunk) + tuple_size(keys)
    if type(keys) is _Multi:  # its tokens: a tuple of four-tuples, norms and keys mostly shared
        size += 200 + 120 * len(keys.entries)
    return size


_LAST: list[ChunkKeys] = []  # the last cache for_prefixes made


_PLAIN = ChunkKeys()  # documents built without an index: no prefixes


def _occurrences(text: str, chunk: str) -> list[int]:
    """Where ``chunk`` occurs in ``text`` as a whole chunk (whitespace or an end either side)."""
    found = []
    size = len(chunk)
    at = text.find(chunk)
    while at >= 0:
        end = at + size
        if (at == 0 or text[at - 1].isspace()) and (end == len(text) or text[end].isspace()):
            found.append(at)
        at = text.find(chunk, at + 1)
    return found
