"""Flat conditions: most rules are a conjunction of key tests, checked with set operations.

A rule's ``Conditions`` say it holds when every ``required`` key is in the document, none of the
``forbidden`` keys is, at least one key of each ``any_of`` clause is, and every node of
``others`` (phrases, regexes, anything not a plain key test) tests true. For the common shapes —
a word, words ANDed, ``a OR b``, ``a AND NOT (b OR c)``, ``(a OR b) c`` — ``others`` is empty and
the rule is a few C-level set operations instead of a walk over its nodes; a phrase keeps its
words in ``required`` too, a cheap test that fails most posts before the positions are looked at.

The index goes one step further per trigger key: a rule woken by key ``k`` knows ``k`` is there,
so ``k`` leaves ``required`` and the clauses containing it are met. What is left decides how the
rule is checked: nothing (it holds: a single word, an OR of words), only required keys (a subset
test), or the general conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.core.query.document import MatchDocument
from service.core.query.match import AllOf, AnyOf, KeyAtom, NotOf, PhraseAtom, PrefixAtom, RuleNode


@dataclass(frozen=True, slots=True)
class Conditions:
    required: frozenset[str] = frozenset()
    forbidden: frozenset[str] = frozenset()
    any_of: tuple[frozenset[str], ...] = ()
    others: tuple[RuleNode, ...] = ()

    def holds(self, doc: MatchDocument) -> bool:
        keys = doc.keys
        if not self.required <= keys or not keys.isdisjoint(self.forbidden):
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
            self.required - {key},
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
    """Flat conditions equivalent to ``node``."""
    required: set[str] = set()
    forbidden: set[str] = set()
    any_of: list[frozenset[str]] = []
    others: list[RuleNode] = []

    def add(item: RuleNode) -> None:
        if isinstance(item, AllOf):
            for child in item.children:
                add(child)
            return
        if isinstance(item, NotOf):
            clause = _clause(item.child)
            if clause is not None:  # NOT (a OR b): none of them
                forbidden.update(clause)
                return
        else:
            clause = _clause(item)
            if clause is not None:
                if len(clause) == 1:
                    required.update(clause)
                else:
                    any_of.append(clause)
                return
        if isinstance(item, PhraseAtom):
            required.update(item.keys)  # necessary, and cheaper to test than the phrase
        others.append(item)

    add(node)
    # A clause with a required key is always met; equal clauses need testing once.
    clauses = tuple(dict.fromkeys(c for c in any_of if c.isdisjoint(required)))
    return Conditions(frozenset(required), frozenset(forbidden), clauses, tuple(others))
