"""Entities of a post: Telegram's (hashtags, cashtags, mentions, links) and watched ones.

Watched entities come from the rules file (``entities:`` with aliases). Each alias is compiled
once into a token sequence, indexed by its first word's lemma: Cyrillic words match any inflected
form (``Лаврову``, ``Лаврова`` → ``лавров``), other words their normalized form (``Lavrov's`` →
``lavrov``). An alias word written with a capital letter matches only capitalized words, so a
look-alike common word (``лавровым листом``, ``apple pie``) is not taken for the name. The
longest alias at a position wins; every entity is reported with its id and canonical name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.core.model import FoundEntity, WatchedEntity
from service.core.morphology import lemma, lemmas
from service.core.post import Entity, Post
from service.core.text import Token, is_cyrillic, tokenize

# Telegram entity types reported, and the type name they get.
_TELEGRAM_TYPES = {
    "hashtag": "hashtag",
    "cashtag": "cashtag",
    "mention": "mention",
    "url": "url",
    "text_link": "url",
}
# The type a watched entity gets when NER did not tell: watched entities are mostly people.
DEFAULT_WATCHED_TYPE = "PER"


def url_domain(url: str) -> str | None:
    """The host of a link without ``www.`` (``x.com/mfa_russia`` → ``x.com``), lower-cased."""
    candidate = url.strip()
    if "://" not in candidate:
        candidate = "http://" + candidate
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")


def telegram_entities(post: Post) -> list[FoundEntity]:
    """Hashtags, cashtags, mentions and links from the post's Telegram entities.

    Canonical forms: a hashtag/cashtag/mention lower-cased without its sign (``#UNGA79`` →
    ``unga79``, ``$BTC`` → ``btc``), a link by its domain (``x.com``).
    """
    found: list[FoundEntity] = []
    for entity in post.entities:
        kind = _TELEGRAM_TYPES.get(entity.type)
        if kind is None:
            continue
        found.append(_telegram_entity(kind, entity))
    return found


def _telegram_entity(kind: str, entity: Entity) -> FoundEntity:
    if kind == "url":
        canonical = url_domain(entity.url or entity.text)
    else:
        canonical = entity.text.lstrip("#$@").lower() or None
    return FoundEntity(kind, entity.text, entity.offset, entity.end, canonical)


@dataclass(frozen=True, slots=True)
class _Alias:
    entity: WatchedEntity
    keys: tuple[str, ...]
    capitalized: tuple[bool, ...]


def _alias_key(norm: str) -> str:
    return lemma(norm) if is_cyrillic(norm) else norm


def _text_keys(norm: str) -> frozenset[str]:
    return lemmas(norm) if is_cyrillic(norm) else frozenset((norm,))


class WatchedMatcher:
    """Watched entities' aliases compiled into a dict keyed by each alias's first lemma."""

    def __init__(self, watched: Iterable[WatchedEntity] = ()) -> None:
        self.watched = tuple(watched)
        self._index: dict[str, list[_Alias]] = {}
        for entity in self.watched:
            for alias in dict.fromkeys((*entity.aliases, entity.name)):
                tokens = _alias_tokens(alias)
                if not tokens:
                    continue
                keys = tuple(_alias_key(token.norm) for token, _ in tokens)
                caps = tuple(upper for _, upper in tokens)
                self._index.setdefault(keys[0], []).append(_Alias(entity, keys, caps))
        for aliases in self._index.values():
            aliases.sort(key=lambda alias: -len(alias.keys))

    def __bool__(self) -> bool:
        return bool(self._index)

    def find(self, text: str, tokens: Sequence[Token] | None = None) -> list[FoundEntity]:
        """Every watched entity named in ``text``: one FoundEntity per mention, longest first."""
        if not self._index:
            return []
        if tokens is None:
            tokens = tokenize(text)
        keys = [_text_keys(token.norm) for token in tokens]
        upper = [text[token.start].isupper() for token in tokens]
        found: list[FoundEntity] = []
        i = 0
        while i < len(tokens):
            best = self._best_at(i, keys, upper)
            if not best:
                i += 1
                continue
            length = len(best[0].keys)
            start, end = tokens[i].start, tokens[i + length - 1].end
            for alias in best:
                found.append(
                    FoundEntity(
                        DEFAULT_WATCHED_TYPE,
                        text[start:end],
                        start,
                        end,
                        canonical=alias.entity.name,
                        id=alias.entity.id,
                    )
                )
            i += length
        return found

    def _best_at(self, i: int, keys: list[frozenset[str]], upper: list[bool]) -> list[_Alias]:
        """The longest aliases starting at token ``i`` (one per entity)."""
        best: list[_Alias] = []
        for key in keys[i]:
            for alias in self._index.get(key, ()):
                if best and len(alias.keys) < len(best[0].keys):
                    break
                if self._matches(alias, i, keys, upper):
                    if best and len(alias.keys) > len(best[0].keys):
                        best = []
                    if all(other.entity.id != alias.entity.id for other in best):
                        best.append(alias)
        return best

    @staticmethod
    def _matches(alias: _Alias, i: int, keys: list[frozenset[str]], upper: list[bool]) -> bool:
        if i + len(alias.keys) > len(keys):
            return False
        for offset, (key, capital) in enumerate(zip(alias.keys, alias.capitalized, strict=True)):
            if key not in keys[i + offset] or (capital and not upper[i + offset]):
                return False
        return True


def _alias_tokens(alias: str) -> list[tuple[Token, bool]]:
    return [(token, alias[token.start].isupper()) for token in tokenize(alias)]


def merge_entities(
    telegram: Sequence[FoundEntity],
    named: Sequence[FoundEntity],
    watched: Sequence[FoundEntity],
) -> tuple[FoundEntity, ...]:
    """One list in text order. A watched mention takes the type of an NER span it overlaps and
    replaces that span (it carries the id and the canonical name)."""
    result = list(telegram)
    kept_named: list[FoundEntity] = []
    typed_watched = list(watched)
    for entity in named:
        overlapping = [
            index
            for index, mention in enumerate(typed_watched)
            if mention.start < entity.end and entity.start < mention.end
        ]
        if not overlapping:
            kept_named.append(entity)
            continue
        for index in overlapping:
            mention = typed_watched[index]
            typed_watched[index] = FoundEntity(
                entity.type, mention.text, mention.start, mention.end, mention.canonical, mention.id
            )
    result.extend(kept_named)
    result.extend(typed_watched)
    result.sort(key=lambda e: (e.start, -e.end, e.type, e.id or ""))
    return tuple(result)
