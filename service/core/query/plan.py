"""Flat conditions: most rules are a conjunction of key tests, checked with set operations.

A rule's ``Conditions`` say it holds when every ``required`` key is in the document, none of the
``forbidden`` keys is, at least one key of each ``any_of`` clause is, and every node of
``others`` (phrases, regexes, anything not a plain key test) tests true. For the common shapes —
a word, words ANDed, ``a OR b``, ``a AND NOT (b OR c)``, ``(a OR b) c`` — ``others`` is empty and
the rule is a few C-level set operations instead of a walk over its nodes; a phrase keeps its
words in ``required`` too, a cheap test that fails most posts before the positions are looked at.

``highlight_node`` does the same for highlights: a rule made only of keys highlights the spans
of its positive keys that are present, with no tree to walk.

The index goes one step further per trigger key: a rule woken by key ``k`` knows ``k`` is there,
so ``k`` leaves ``required`` and the clauses containing it are met. What is left decides how the
rule is checked: nothing (it holds: a single word, an OR of words), only required keys (a subset
test), or the general conditions.
"""

from __future__ import annotations

from typing import NamedTuple

from service.core.query.document import MatchDocument
from service.core.query.match import (
    AllOf,
    AnyKeys,
    AnyOf,
    KeyAtom,
    NotOf,
    PhraseAtom,
    PrefixAtom,
    RuleNode,
)


class Conditions(NamedTuple):
    """Flat conditions of a rule (see the module). Plain tuples of strings throughout, so the
    garbage collector stops tracking those of key-only rules: an index holds 100k of them."""

    required: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()
    others: tuple[RuleNode, ...] = ()

    def holds(self, doc: MatchDocument) -> bool:
        keys = doc.keys
        if not keys.issuperset(self.required) or not keys.isdisjoint(self.forbidden):
            return False
        for clause in self.any_of:
            if keys.isdisjoint(clause):
                return False
        for other in self.others:  # noqa: SIM110 - faster than all(<generator>) on this path
            if not other.test(doc):
                return False
        return True

    def given(self, key: str) -> Conditions:
        """These conditions for a document known to have ``key``."""
        return Conditions(
            tuple(required for required in self.required if required != key),
            self.forbidden,
            tuple(clause for clause in self.any_of if key not in clause),
            self.others,
        )

    @property
    def only_required(self) -> bool:
        return not (self.forbidden or self.any_of or self.others)


def _key(node: RuleNode) -> str | None:
    return node.key if isinstance(node, KeyAtom | PrefixAtom) else None


def _clause(node: RuleNode) -> frozenset[str] | None:
    """The keys of which one must be present for ``node`` to hold, when that is all it says (a
    key, or an OR of keys); None for anything else."""
    key = _key(node)
    if key is not None:
        return frozenset((key,))
    if not isinstance(node, AnyOf):
        return None
    keys: set[str] = set()
    for child in node.children:
        found = _clause(child)
        if found is None:
            return None
        keys |= found
    return frozenset(keys)


def conditions(node: RuleNode) -> Conditions:
    """Flat conditions equivalent to ``node``.

    Walked with a stack, not a recursive closure: a closure that calls itself is a reference
    cycle, which outlives the call until the garbage collector runs (a compile pauses it), and
    100k rules left ~100 MB of such cycles behind."""
    required: set[str] = set()
    forbidden: set[str] = set()
    any_of: list[frozenset[str]] = []
    others: list[RuleNode] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, AllOf):
            stack.extend(reversed(item.children))  # in order: ``others`` are tested in order
            continue
        if isinstance(item, NotOf):
            clause = _clause(item.child)
            if clause is not None:  # NOT (a OR b): none of them
                forbidden.update(clause)
                continue
        else:
            clause = _clause(item)
            if clause is not None:
                if len(clause) == 1:
                    required.update(clause)
                else:
                    any_of.append(clause)
                continue
        if isinstance(item, PhraseAtom):
            required.update(item.keys)  # necessary, and cheaper to test than the phrase
        others.append(item)
    # A clause with a required key is always met; equal clauses need testing once.
    clauses = dict.fromkeys(tuple(sorted(c)) for c in any_of if c.isdisjoint(required))
    return Conditions(tuple(sorted(required)), tuple(sorted(forbidden)), (*clauses,), (*others,))


def _positive_keys(item: RuleNode, keys: list[str]) -> bool:
    """Add to ``keys`` the keys whose spans ``item`` (which holds) highlights; False when it is
    not made only of keys, ANDs, ORs of keys and NOTs."""
    if isinstance(item, AllOf):  # it holds: every child does
        return all(_positive_keys(child, keys) for child in item.children)
    if isinstance(item, NotOf):  # shows nothing
        return True
    clause = _clause(item)  # an OR of an AND would need the AND tested: not flat
    if clause is None:
        return False
    keys.extend(sorted(clause))
    return True


def highlight_node(node: RuleNode) -> RuleNode:
    """A node with the same highlights as ``node`` (which holds), cheaper to compute: for a rule
    made only of keys, ANDs, ORs of keys and NOTs, the keys whose spans it highlights as one
    ``AnyKeys`` (a key of an OR shows only when present, as in the tree); otherwise ``node``."""
    keys: list[str] = []
    if isinstance(node, KeyAtom | PrefixAtom) or not _positive_keys(node, keys) or not keys:
        return node
    return AnyKeys(tuple(dict.fromkeys(keys)))
