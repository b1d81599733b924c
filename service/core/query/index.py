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

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from service.core.memory import BoundedCache, collector_paused
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
# A compiled query: its node, the document keys that wake it (None: it is always evaluated), its
# flat conditions and what its highlights come from.
Compiled = tuple[RuleNode, tuple[str, ...] | None, Conditions, RuleNode]
# Compiled queries kept per process, so a recompile after a change compiles only what changed.
# Bounded in bytes: a compiled query holds ~900 bytes plus ~28 per character of its text (measured
# with ``memory.deep_size`` on generated rule sets; a 1,000-character query holds ~24 KB), and the
# budget holds a few hundred thousand ordinary queries, the rule sets a worker is sized for.
COMPILED_CACHE_BYTES = 192 * 1024 * 1024


def _compiled_size(query: str, _compiled: Compiled) -> int:
    return 900 + 28 * len(query)


_COMPILED: BoundedCache[str, Compiled] = BoundedCache(COMPILED_CACHE_BYTES, _compiled_size)
# How likely a field key is to be in a post, relative to a word (lower wakes fewer rules):
# every post has a language, many a topic; a channel or a hashtag narrows a lot.
_FIELD_COST = {"lang:": 8.0, "topic:": 4.0, "channel:": 0.5, "entity:": 1.0, "domain:": 1.0}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    subscription_id: str
    query: str
    node: RuleNode
    triggers: tuple[str, ...] | None  # the document keys that wake it (``trigger_key`` form)
    conditions: Conditions | None = None  # computed from ``node`` when not given
    highlight: RuleNode | None = None  # what the highlights come from (``node`` when not given)


def compile_tree(tree: q.Node, entities: Mapping[str, WatchedEntity]) -> Compiled:
    """A parsed query compiled: its node, trigger keys, flat conditions and highlight node."""
    node = compile_query(tree, entities)
    found = triggers(node)
    keys = None if found is None else tuple(sorted(trigger_key(t) for t in found))
    return node, keys, conditions(node), highlight_node(node)


def compile_query(tree: q.Node, entities: Mapping[str, WatchedEntity]) -> RuleNode:
    """Turn a parsed query into rule nodes; ``entity:`` expands to its aliases as phrases."""
    if isinstance(tree, q.And):
        return AllOf(tuple(compile_query(child, entities) for child in tree.children))
    if isinstance(tree, q.Or):
        return AnyOf(tuple(compile_query(child, entities) for child in tree.children))
    if isinstance(tree, q.Not):
        return NotOf(compile_query(tree.child, entities))
    if isinstance(tree, q.Word):
        return KeyAtom(word_key(tree.norm, tree.exact))
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
    return KeyAtom(field_key(tree.name, tree.value))


# Told a subscription id and why its query cannot be used (``RuleIndex.build``).
OnError = Callable[[str, str], None]


def _compile(query: str, entities: Mapping[str, WatchedEntity]) -> Compiled:
    tree = q.parse(query, keep=False)  # the compiled form is kept (below), not the tree
    if "entity:" not in query:
        return _COMPILED.put(query, compile_tree(tree, entities))
    for term, _positive in q.terms(tree):  # entity terms compile per rule set: not cached
        if isinstance(term, q.Field) and term.name == "entity" and term.value not in entities:
            message = f"entity:{term.value} is not defined under entities:"
            raise q.QueryError(message, term.position)
    return compile_tree(tree, entities)


def trigger_key(trigger: Trigger) -> str:
    """The document key a trigger stands for (a prefix's is ``*prefix``)."""
    kind, value = trigger
    return prefix_key(value) if kind == "p" else value


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
            for key in rule.triggers:
                given = flat.given(key)
                if not given.required and given.only_required:
                    sure.setdefault(key, []).append(number)
                elif given.only_required:
                    required.setdefault(key, []).append((number, given.required))
                else:
                    general.setdefault(key, []).append((number, given))
        self._plan: dict[str, Plan] = {}
        for key in sure.keys() | required.keys() | general.keys():
            # Popped as they become tuples: the lists go as the plan grows (a lower peak).
            self._plan[key] = (
                tuple(sure.pop(key, ())),
                tuple(required.pop(key, ())),
                tuple(general.pop(key, ())),
            )
        self._chunk_keys = ChunkKeys.for_prefixes(prefixes)
        self._marks = [rule.highlight or rule.node for rule in self.rules]
        self._regexes = RegexFilter(
            node for n in self.always for node in self._conditions[n].others
        )
        # Per ``always`` rule, the regexes its conditions need (ANDed: one that cannot match the
        # post rules the rule out without testing it).
        self._always_needs = [(n, self._regexes.needs(self._conditions[n])) for n in self.always]

    @classmethod
    def build(cls, ruleset: RuleSet, on_error: OnError | None = None) -> RuleIndex:
        """Compile a validated rule set (paused subscriptions are left out; muted ones stay in
        and are dropped at match time while their mute lasts). With ``on_error``, a query that
        cannot be used is reported to it and left out instead of raising."""
        live = [sub for sub in ruleset.subscriptions if not sub.paused]
        index = cls.from_queries(
            [(sub.id, sub.query) for sub in live],
            ruleset.entities,
            version=ruleset.version,
            on_error=on_error,
        )
        index.mutes = {sub.id: sub.mute_until for sub in live if sub.mute_until is not None}
        return index

    @classmethod
    def from_queries(
        cls,
        queries: Iterable[tuple[str, str]],
        entities: Iterable[WatchedEntity] = (),
        version: str = "",
        on_error: OnError | None = None,
    ) -> RuleIndex:
        """Compile ``(subscription_id, query)`` pairs; raises QueryError on a bad query (or,
        with ``on_error``, reports it there with the reason and leaves it out: a query that
        does not parse, or names an entity the rule set does not define).

        A query without ``entity:`` compiles the same in every index, so its compiled form is
        kept per process: recompiling a rule set after a change only compiles what changed."""
        entity_map = {entity.id: entity for entity in entities}
        with collector_paused():
            rules = []
            for subscription_id, query in queries:
                compiled = _COMPILED.get(query)
                if compiled is None:
                    try:
                        compiled = _compile(query, entity_map)
                    except q.QueryError as exc:
                        if on_error is None:
                            raise
                        on_error(subscription_id, str(exc))
                        continue
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
        if self.always:
            possible = self._regexes.possible(doc)
            conditions = self._conditions
            for number, needs in self._always_needs:
                if needs and possible is not None and not possible.issuperset(needs):
                    continue
                if conditions[number].holds(doc):
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

    def costly(
        self, post: Post, enrichment: Enrichment | None, threshold: float
    ) -> list[tuple[str, float]]:
        """The subscriptions whose conditions take at least ``threshold`` seconds of CPU to test
        on this post, with their cost, costliest first (what a worker's budget sets aside). Only
        rules with more than key tests (phrases, regexes) can cost much; each is timed on a
        fresh document (no cached result hides its cost), in this thread's CPU time (a pause of
        the process is not the rule's), and timed again before it is called costly."""
        first = self._costs(post, enrichment, None)
        again = self._costs(post, enrichment, {n for n, cost in first.items() if cost >= threshold})
        found = [(self.rules[n].subscription_id, min(cost, first[n])) for n, cost in again.items()
                 if min(cost, first[n]) >= threshold]  # fmt: skip
        return sorted(found, key=lambda item: -item[1])

    def _costs(
        self, post: Post, enrichment: Enrichment | None, only: set[int] | None
    ) -> dict[int, float]:
        if only is not None and not only:
            return {}
        doc = self.document(post, enrichment)
        tested: list[tuple[int, Conditions]] = [
            (number, self._conditions[number]) for number in self.always
        ]
        for key in self._plan.keys() & doc.keys:
            tested.extend(self._plan[key][2])
        costs: dict[int, float] = {}
        clock = time.thread_time
        for number, flat in tested:
            if not flat.others or (only is not None and number not in only):
                continue
            started = clock()
            flat.holds(doc)
            costs[number] = costs.get(number, 0.0) + clock() - started
        return costs

    def drop(self, subscription_ids: Collection[str]) -> int:
        """Stop evaluating these subscriptions' rules in this index (a worker's budget sets
        them aside until the next compile leaves them out); returns how many rules."""
        wanted = set(subscription_ids)
        numbers = {n for n, rule in enumerate(self.rules) if rule.subscription_id in wanted}
        if not numbers:
            return 0
        self.always = [n for n in self.always if n not in numbers]
        keys = {key for n in numbers for key in self.rules[n].triggers or ()}
        for key in keys & self._plan.keys():
            sure, required, general = self._plan[key]
            self._plan[key] = (
                tuple(n for n in sure if n not in numbers),
                tuple(item for item in required if item[0] not in numbers),
                tuple(item for item in general if item[0] not in numbers),
            )
        return len(numbers)


class RegexFilter:
    """The regexes of the rules evaluated for every post, prefiltered together: RE2's
    FilteredRE2 finds which of them can possibly match a text from the literal strings each
    needs, in one pass (~3 µs a post for any number of regexes), so a rule that needs a regex
    ruled out is not tested at all (a run costs ~7 µs through the Python wrapper, and a rule set
    had ~20 lone regexes a post). A regex that needs no literal is always possible. Built only
    when there are two or more such regexes."""

    def __init__(self, nodes: Iterable[RuleNode]) -> None:
        regexes = list({id(n.regex): n.regex for n in nodes if isinstance(n, RegexAtom)}.values())
        self._numbers = {id(regex): number for number, regex in enumerate(regexes)}
        self._filter: Any = None
        if len(regexes) < 2:
            return
        candidate = re2.Filter()
        try:
            for regex in regexes:
                candidate.Add(regex.pattern, regex.options)
            candidate.Compile()
        except re2.error:  # never expected; without the filter every rule is tested, as before
            return
        self._filter = candidate

    def needs(self, flat: Conditions) -> tuple[int, ...]:
        """The numbers of the regexes a rule's conditions need (every one of them must match)."""
        return tuple(
            self._numbers[id(node.regex)] for node in flat.others if isinstance(node, RegexAtom)
        )

    def possible(self, doc: MatchDocument) -> set[int] | None:
        """The numbers of the regexes that may match ``doc`` (None: all may, no filter)."""
        if self._filter is None:
            return None
        return set(self._filter.Match(doc.raw, potential=True) or ())


def _prefixes(node: RuleNode) -> list[str]:
    if isinstance(node, PrefixAtom):
        return [node.prefix]
    if isinstance(node, AllOf | AnyOf):
        return [prefix for child in node.children for prefix in _prefixes(child)]
    if isinstance(node, NotOf):
        return _prefixes(node.child)
    return []
