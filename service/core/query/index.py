"""Compile every subscription into one index, and match a post against all of them at once.

Each query compiles to a tree of rule nodes (``match.py``) and to its *triggers*: a set of keys
(or token prefixes) of which at least one must be in a post for the query to possibly hold. The
index maps every trigger to the rules it wakes, so a post only evaluates the rules one of its own
tokens or fields names, and its cost grows with its length and its matches, not with the number
of rules. A query that can hold without any positive term (``NOT x``, a lone regex) has no
triggers and is evaluated for every post: such rules are listed in ``always``.

A woken rule is checked through its flat conditions (``plan.py``): per trigger key the index
lists the rules that hold as soon as the key is there (a word, an OR of words), those that need
a few more keys (a subset test), and the rest. Matches come back without highlights, which are
computed when first read. Compiled queries are kept per process, so a recompile after a change
compiles only the new queries.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from service.core.model import Enrichment, WatchedEntity
from service.core.post import Post
from service.core.query import parser as q
from service.core.query.document import (
    ChunkKeys,
    MatchDocument,
    build_document,
    field_key,
    prefix_key,
    word_key,
)
from service.core.query.match import (
    AllOf,
    AnyOf,
    KeyAtom,
    Match,
    NotOf,
    PhraseAtom,
    PrefixAtom,
    RegexAtom,
    RuleNode,
)
from service.core.query.plan import Conditions, conditions, highlight_node
from service.core.rules import RuleSet
from service.core.text import tokenize

# A trigger: ("k", key) for a document key, ("p", prefix) for a token prefix.
Trigger = tuple[str, str]
# Compiled queries kept per process (query text -> node, triggers, conditions); cleared when full.
COMPILED_CACHE_MAX = 300_000
_COMPILED: dict[str, tuple[RuleNode, frozenset[Trigger] | None, Conditions, RuleNode]] = {}
# How likely a field key is to be in a post, relative to a word (lower wakes fewer rules):
# every post has a language, many a topic; a channel or a hashtag narrows a lot.
_FIELD_COST = {"lang:": 8.0, "topic:": 4.0, "channel:": 0.5, "entity:": 1.0, "domain:": 1.0}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    subscription_id: str
    query: str
    node: RuleNode
    triggers: frozenset[Trigger] | None
    conditions: Conditions | None = None  # computed from ``node`` when not given
    highlight: RuleNode | None = None  # what the highlights come from (``node`` when not given)


# Rules share their words: one KeyAtom per key (nodes are immutable), fewer objects to keep.
_key_atom = lru_cache(maxsize=300_000)(KeyAtom)


def compile_query(tree: q.Node, entities: Mapping[str, WatchedEntity]) -> RuleNode:
    """Turn a parsed query into rule nodes; ``entity:`` expands to its aliases as phrases."""
    if isinstance(tree, q.And):
        return AllOf(tuple(compile_query(child, entities) for child in tree.children))
    if isinstance(tree, q.Or):
        return AnyOf(tuple(compile_query(child, entities) for child in tree.children))
    if isinstance(tree, q.Not):
        return NotOf(compile_query(tree.child, entities))
    if isinstance(tree, q.Word):
        return _key_atom(word_key(tree.norm, tree.exact))
    if isinstance(tree, q.Prefix):
        return PrefixAtom(tree.norm)
    if isinstance(tree, q.Phrase):
        return PhraseAtom(tuple(word_key(word, tree.exact) for word in tree.words))
    if isinstance(tree, q.Regex):
        return RegexAtom(q.compile_regex(tree.pattern, tree.ignore_case))
    if tree.name == "entity":
        options: list[RuleNode] = [KeyAtom(field_key("entity", tree.value))]
        watched = entities.get(tree.value)
        for alias in watched.aliases if watched else ():
            words = tuple(word_key(token.norm) for token in tokenize(alias))
            if len(words) == 1:
                options.append(KeyAtom(words[0]))
            elif words:
                options.append(PhraseAtom(words))
        return AnyOf(tuple(options))
    return _key_atom(field_key(tree.name, tree.value))


def trigger_key(trigger: Trigger) -> str:
    """The document key a trigger stands for (a prefix's is ``*prefix``)."""
    kind, value = trigger
    return prefix_key(value) if kind == "p" else value


@lru_cache(maxsize=200_000)
def _cost(trigger: Trigger) -> float:
    kind, value = trigger
    if kind == "p":
        return 3.0 + 4.0 / len(value)
    for prefix, cost in _FIELD_COST.items():
        if value.startswith(prefix):
            return cost
    if value[:1] in "#$@":
        return 0.5
    # Longer words are rarer; an exact Cyrillic form (=слово) is rarer than its lemma.
    return 1.0 + 3.0 / len(value)


def triggers(node: RuleNode) -> frozenset[Trigger] | None:
    """Keys of which one must be present for ``node`` to hold; None when there is no such set."""
    if isinstance(node, KeyAtom):
        return frozenset((("k", node.key),))
    if isinstance(node, PrefixAtom):
        return frozenset((("p", node.prefix),))
    if isinstance(node, PhraseAtom):
        # Any word of a phrase must be there; wake on the rarest-looking one.
        return frozenset((min((("k", key) for key in node.keys), key=_cost),))
    if isinstance(node, AnyOf):
        union: set[Trigger] = set()
        for child in node.children:
            found = triggers(child)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if isinstance(node, AllOf):
        options = [found for child in node.children if (found := triggers(child)) is not None]
        if not options:
            return None
        return min(options, key=lambda found: sum(_cost(t) for t in found))
    return None  # NotOf, RegexAtom: hold without any key of the post


# What a trigger key's rules need, checked in this order: numbers of the rules that hold once the
# key is there; (number, keys) of rules that need these other keys too; (number, conditions) of
# the rest.
Plan = tuple[
    tuple[int, ...], tuple[tuple[int, tuple[str, ...]], ...], tuple[tuple[int, Conditions], ...]
]


class RuleIndex:
    """All subscriptions compiled into one index. Build once per rule-set version, then
    ``match(post, enrichment)`` for every post version."""

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        version: str = "",
        mutes: Mapping[str, float] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.version = version
        # Subscription id -> end of its mute (Unix time): matches before then are dropped.
        self.mutes = dict(mutes or {})
        self.always: list[int] = []
        self._conditions: dict[int, Conditions] = {}  # of the ``always`` rules
        sure: dict[str, list[int]] = {}
        required: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        general: dict[str, list[tuple[int, Conditions]]] = {}
        prefixes: set[str] = set()
        for number, rule in enumerate(self.rules):
            if "*" in rule.query:  # a prefix term needs one; most queries have none
                prefixes.update(_prefixes(rule.node))
            flat = rule.conditions or conditions(rule.node)
            if rule.triggers is None:
                self.always.append(number)
                self._conditions[number] = flat
                continue
            for trigger in rule.triggers:
                key = trigger_key(trigger)
                given = flat.given(key)
                if not given.required and given.only_required:
                    sure.setdefault(key, []).append(number)
                elif given.only_required:
                    required.setdefault(key, []).append((number, given.required))
                else:
                    general.setdefault(key, []).append((number, given))
        self._plan: dict[str, Plan] = {}
        for key in sure.keys() | required.keys() | general.keys():
            plan = (
                tuple(sure.get(key, ())),
                tuple(required.get(key, ())),
                tuple(general.get(key, ())),
            )
            self._plan[key] = plan
        self._chunk_keys = ChunkKeys.for_prefixes(prefixes)
        self._marks = [rule.highlight or rule.node for rule in self.rules]

    @classmethod
    def build(cls, ruleset: RuleSet) -> RuleIndex:
        """Compile a validated rule set (paused subscriptions are left out; muted ones stay in
        and are dropped at match time while their mute lasts)."""
        live = [sub for sub in ruleset.subscriptions if not sub.paused]
        index = cls.from_queries(
            [(sub.id, sub.query) for sub in live], ruleset.entities, version=ruleset.version
        )
        index.mutes = {sub.id: sub.mute_until for sub in live if sub.mute_until is not None}
        return index

    @classmethod
    def from_queries(
        cls,
        queries: Iterable[tuple[str, str]],
        entities: Iterable[WatchedEntity] = (),
        version: str = "",
    ) -> RuleIndex:
        """Compile ``(subscription_id, query)`` pairs; raises QueryError on a bad query.

        A query without ``entity:`` compiles the same in every index, so its compiled form is
        kept per process: recompiling a rule set after a change only compiles what changed."""
        entity_map = {entity.id: entity for entity in entities}
        with _collector_paused():
            rules = []
            for subscription_id, query in queries:
                compiled = _COMPILED.get(query)
                if compiled is None:
                    node = compile_query(q.parse(query), entity_map)
                    compiled = (node, triggers(node), conditions(node), highlight_node(node))
                    if "entity:" not in query:
                        if len(_COMPILED) >= COMPILED_CACHE_MAX:
                            _COMPILED.clear()
                        _COMPILED[query] = compiled
                rules.append(CompiledRule(subscription_id, query, *compiled))
            return cls(rules, version)

    def __len__(self) -> int:
        return len(self.rules)

    def document(self, post: Post, enrichment: Enrichment | None = None) -> MatchDocument:
        """The post prepared for this index (its keys of rule prefixes included)."""
        return build_document(post, enrichment, self._chunk_keys)

    def candidates(self, doc: MatchDocument) -> list[int]:
        """Numbers of the rules a document wakes (in rule order), ``always`` rules included."""
        found: set[int] = set(self.always)
        plan = self._plan
        for key in plan.keys() & doc.keys:
            sure, required, general = plan[key]
            found.update(sure)
            found.update(number for number, _ in required)
            found.update(number for number, _ in general)
        return sorted(found)

    def matching(self, doc: MatchDocument) -> list[int]:
        """Numbers of the rules that hold for a document, in rule order."""
        keys = doc.keys
        plan = self._plan
        found: set[int] = set()
        add = found.add
        for key in plan.keys() & keys:
            sure, required, general = plan[key]
            found.update(sure)
            for number, needed in required:
                if keys.issuperset(needed):
                    add(number)
            for number, flat in general:
                if flat.holds(doc):
                    add(number)
        for number in self.always:
            if self._conditions[number].holds(doc):
                add(number)
        return sorted(found)

    def match_document(self, doc: MatchDocument, now: float | None = None) -> list[Match]:
        """The matches of a document (none of a subscription muted at ``now``, when given);
        their highlights are computed when first read."""
        rules, marks, mutes = self.rules, self._marks, self.mutes
        found = [
            Match(rules[number].subscription_id, node=marks[number], doc=doc)
            for number in self.matching(doc)
        ]
        if mutes and now is not None:
            found = [m for m in found if mutes.get(m.subscription_id, 0.0) <= now]
        return found

    def match(
        self, post: Post, enrichment: Enrichment | None = None, now: float | None = None
    ) -> list[Match]:
        """Every subscription whose query holds for this post version (and is not muted at
        ``now``), with highlights."""
        return self.match_document(self.document(post, enrichment), now)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while compiling, and none right after over what it built.

    A compile allocates a million objects that all stay alive; each collection they trigger
    would walk them (and the rest of the heap) for nothing, which took as long as the compile
    itself at 100k rules. Afterwards they go straight to the oldest generation (``freeze`` then
    ``unfreeze`` moves every tracked object there without walking any), where only full
    collections look at them — unless something else froze objects, which stay as they are."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _prefixes(node: RuleNode) -> list[str]:
    if isinstance(node, PrefixAtom):
        return [node.prefix]
    if isinstance(node, AllOf | AnyOf):
        return [prefix for child in node.children for prefix in _prefixes(child)]
    if isinstance(node, NotOf):
        return _prefixes(node.child)
    return []
