"""The rules file (YAML): watched entities and subscriptions, validated with line numbers.

```yaml
entities:
  - id: lavrov
    name: Sergey Lavrov
    aliases: ["Sergey Lavrov", "Lavrov", "Лавров"]
subscriptions:
  - id: ceasefire
    name: Ceasefire, not rumours
    query: '(ceasefire OR перемирие) AND NOT (rumor OR слухи)'
    paused: false          # optional
    notify: [...]          # optional, kept as raw data for the delivery issue
```
Every problem is reported (not just the first), each with its line; unknown keys, duplicate ids,
query errors, references to undefined entities, refused ``notify:`` targets (checked with
``service.core.targets`` under the caller's policy) and regexes over the cost limit are errors.

The file is read as hostile input: it is screened event by event before anything is built, so
anchors and aliases (a 576-byte "billion laughs" expands to gigabytes), tags (``!!python/...``,
``!!binary``) and nesting deeper than RULES_YAML_MAX_DEPTH are problems with their line, as is
every other loader error (bad bytes, YAML syntax, a value that cannot be built).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from service import constants
from service.core.delivery import validate_target
from service.core.memory import collector_paused
from service.core.model import WatchedEntity
from service.core.query.budget import check_regex_cost
from service.core.query.parser import Field, QueryError, parse, terms
from service.core.targets import STRICT, TargetPolicy
from service.core.yaml_screen import line_of, screen_yaml, yaml_problem

# Ids: letters, digits, "_", "-", "." (and "~", which scopes a tenant's ids; see the API).
_ID_RE = re.compile(r"[A-Za-z0-9][\w.\-~]*")
# libyaml's parser when PyYAML was built with it (~10x faster than the pure-Python one); both
# compose the same nodes, with their line numbers (``start_mark``), which every problem names.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TOP_KEYS = ("entities", "subscriptions")
T = TypeVar("T")
ENTITY_KEYS = ("id", "name", "aliases")
SUBSCRIPTION_KEYS = ("id", "name", "query", "notify", "paused")


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription: an id, a query and where alerts go (``notify``).

    ``paused`` leaves it out of the index; ``mute_until`` (a Unix time) silences it until then,
    checked at match time against the matching worker's clock, so a mute ends by itself.
    """

    id: str
    query: str
    name: str = ""
    paused: bool = False
    notify: tuple[Any, ...] = ()
    mute_until: float | None = None
    owner: str | None = None  # the subscriber (``tg:<chat>``, ``api:<name>``); None: operator

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "query": self.query,
            "paused": self.paused,
            "notify": list(self.notify),
            "mute_until": self.mute_until,
        }
        if self.owner is not None:
            data["owner"] = self.owner
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subscription:
        """From a stored record. Records of the subscriber store say who paused it in
        ``user_paused`` (an older ``paused`` there also counted a mute) and why a worker set it
        aside in ``set_aside``."""
        mute = data.get("mute_until")
        owner = data.get("owner")
        sub_id = str(data["id"])
        name = data.get("name")
        return cls(
            id=sub_id,
            query=str(data["query"]),
            # One string when the name is the id (the usual case): 100k rules, 100k strings less.
            name=sub_id if not name or name == sub_id else str(name),
            # A subscription a worker set aside (over its budget) stays out of the index.
            paused=bool(data.get("user_paused", data.get("paused", False)))
            or bool(data.get("set_aside")),
            notify=tuple(data.get("notify") or ()),
            mute_until=float(mute) if isinstance(mute, int | float) and mute else None,
            owner=owner if isinstance(owner, str) else None,
        )

    def muted(self, now: float) -> bool:
        return self.mute_until is not None and self.mute_until > now


# What a subscription watches (the ``kind`` label of tgwatch_matches_total).
SUBSCRIPTION_KINDS = ("keyword", "entity", "topic")


def subscription_kind(query: str) -> str:
    """What a subscription watches, for metrics: ``entity`` (an ``entity:`` term), ``topic``
    (a ``topic:`` term, no entity) or ``keyword`` (anything else)."""
    if "entity:" not in query and "topic:" not in query:
        return "keyword"  # the common case, without parsing
    try:
        fields = {
            t.name for t, positive in terms(parse(query)) if isinstance(t, Field) and positive
        }
    except QueryError:
        return "keyword"
    if "entity" in fields:
        return "entity"
    return "topic" if "topic" in fields else "keyword"


@dataclass(frozen=True)
class RuleSet:
    """Watched entities and subscriptions, as loaded from a rules file or from Redis."""

    entities: tuple[WatchedEntity, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.version:
            canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
            object.__setattr__(self, "version", digest)

    def entity_map(self) -> dict[str, WatchedEntity]:
        return {entity.id: entity for entity in self.entities}

    def to_dict(self) -> dict[str, Any]:
        return {
            "entities": [entity.to_dict() for entity in self.entities],
            "subscriptions": [sub.to_dict() for sub in self.subscriptions],
        }


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rules file: where (1-based line, if known) and what."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class RulesError(ValueError):
    """A rules file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[RuleProblem], source: str = "rules") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{source}: {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def load_rules(
    path: Path,
    *,
    targets: TargetPolicy | None = STRICT,
    regex_ms: float | None = constants.REGEX_COST_MAX_MS,
) -> RuleSet:
    """Read and validate a rules file; raises RulesError with every problem found. ``targets``
    is the policy ``notify:`` webhooks are checked with (None: targets are not checked, for
    callers that use only entities and queries); ``regex_ms`` the cost limit of a regex."""
    try:
        size = path.stat().st_size
        if size > constants.RULES_FILE_MAX_BYTES:
            raise RulesError(
                [RuleProblem(None, f"larger than {constants.RULES_FILE_MAX_BYTES} bytes")],
                str(path),
            )
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RulesError([RuleProblem(None, f"cannot read: {reason}")], str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = RuleProblem(line_of(data, exc.start), "not UTF-8 text")
        raise RulesError([problem], str(path)) from None
    return parse_rules(text, source=str(path), targets=targets, regex_ms=regex_ms)


def parse_rules(
    text: str,
    source: str = "rules",
    *,
    targets: TargetPolicy | None = STRICT,
    regex_ms: float | None = constants.REGEX_COST_MAX_MS,
) -> RuleSet:
    """Parse and validate rules-file text (see the module docstring for the format)."""
    screened = screen_yaml(text, constants.RULES_YAML_MAX_DEPTH, constants.RULES_PROBLEMS_MAX)
    if screened:
        raise RulesError([RuleProblem(line, message) for line, message in screened], source)
    try:
        with collector_paused():  # a rules file of 100k subscriptions is millions of nodes
            root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise RulesError([RuleProblem(*yaml_problem(exc, text))], source) from None
    reader = _Reader(targets, regex_ms)
    with collector_paused():
        ruleset = reader.read(root)
    if reader.problems:
        ordered = sorted(reader.problems, key=lambda problem: problem.line or 0)
        raise RulesError(ordered[: constants.RULES_PROBLEMS_MAX], source)
    return ruleset


def check_queries(ruleset: RuleSet) -> list[RuleProblem]:
    """Problems of a rule set built from plain data (Redis, an API): bad queries, unknown
    entities, duplicate ids. The rules-file reader reports the same problems with lines."""
    problems: list[RuleProblem] = []
    entity_ids = {entity.id for entity in ruleset.entities}
    seen: set[str] = set()
    for sub in ruleset.subscriptions:
        if sub.id in seen:
            problems.append(RuleProblem(None, f'duplicate subscription id "{sub.id}"'))
        seen.add(sub.id)
        message = query_problem(sub.id, sub.query, entity_ids)
        if message:
            problems.append(RuleProblem(None, message))
    return problems


def query_problem(
    subscription_id: str, query: str, entity_ids: set[str], regex_ms: float | None = None
) -> str | None:
    """Why a subscription's query cannot be used, or None when it can. ``regex_ms`` also
    measures its regexes against that cost limit (when a query is being created, not each
    time a stored rule set is compiled)."""
    try:
        tree = parse(query)
        if regex_ms is not None:
            check_regex_cost(tree, regex_ms)
    except QueryError as exc:
        return f'subscription "{subscription_id}": query error: {exc}'
    for term, _positive in terms(tree):
        if isinstance(term, Field) and term.name == "entity" and term.value not in entity_ids:
            return (
                f'subscription "{subscription_id}": entity:{term.value} at {term.position} '
                "is not defined under entities:"
            )
    return None


class _UnbuildableError(Exception):
    """A node whose value could not be built (reported as a problem at its line)."""


class _Reader:
    """Walks the composed YAML nodes, keeping every node's line for the error messages."""

    def __init__(self, targets: TargetPolicy | None, regex_ms: float | None) -> None:
        self.problems: list[RuleProblem] = []
        self.targets = targets
        self.regex_ms = regex_ms
        self._constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(RuleProblem(line, message))

    def read(self, root: yaml.Node | None) -> RuleSet:
        if root is None:
            return RuleSet()
        top = self.mapping(root, TOP_KEYS, "the rules file")
        entities = [e for node in self.items(top.get("entities"), "entities") if
                    (e := self._guarded(self.entity, node)) is not None]  # fmt: skip
        self.unique([(e.id, n) for e, n in entities], "entity")
        entity_ids = {entity.id for entity, _ in entities}
        subs = [s for node in self.items(top.get("subscriptions"), "subscriptions") if
                (s := self._guarded(self.subscription, node, entity_ids)) is not None]  # fmt: skip
        self.unique([(s.id, n) for s, n in subs], "subscription")
        return RuleSet(tuple(e for e, _ in entities), tuple(s for s, _ in subs))

    def _guarded(self, build: Callable[..., T | None], *args: Any) -> T | None:
        """One item built, or None when a value of it could not be (already a problem)."""
        try:
            return build(*args)
        except _UnbuildableError:
            return None

    def mapping(self, node: yaml.Node, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping of {', '.join(allowed)}")
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in allowed:
                self.problem(
                    key_node, f'unknown key "{key}" in {what} (allowed: {", ".join(allowed)})'
                )
            elif key in out:
                self.problem(key_node, f'key "{key}" given twice in {what}')
            else:
                out[key] = value_node
        out["__node__"] = node
        return out

    def items(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "null")):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list")
            return []
        return list(node.value)

    def value(self, node: yaml.Node) -> Any:
        """The node's value; a problem at its line (and _UnbuildableError) when it cannot be built
        (a date out of range, an integer too long to read...)."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)[:120] or type(exc).__name__
            self.problem(node, f"a value that cannot be read: {reason}")
            raise _UnbuildableError from None

    def text(self, fields: dict[str, Any], key: str, what: str, required: bool) -> str | None:
        node = fields.get(key)
        if node is None:
            if required:
                self.problem(fields.get("__node__"), f'{what} has no "{key}"')
            return None
        value = self.value(node)
        if not isinstance(value, str) or not value.strip():
            self.problem(node, f'"{key}" of {what} must be a non-empty string')
            return None
        return value

    def ident(self, fields: dict[str, Any], what: str) -> str | None:
        value = self.text(fields, "id", what, required=True)
        if value is not None and not _ID_RE.fullmatch(value):
            self.problem(fields["id"], f'id "{value}" may hold only letters, digits, "_", "-", "."')
            return None
        return value

    def entity(self, node: yaml.Node) -> tuple[WatchedEntity, yaml.Node] | None:
        fields = self.mapping(node, ENTITY_KEYS, "an entity")
        if not fields:
            return None
        entity_id = self.ident(fields, "an entity")
        what = f'entity "{entity_id}"' if entity_id else "an entity"
        name = self.text(fields, "name", what, required=False)
        aliases_node = fields.get("aliases")
        aliases: list[str] = []
        if aliases_node is None:
            self.problem(node, f'{what} has no "aliases"')
        else:
            raw = self.value(aliases_node)
            if not isinstance(raw, list) or not raw:
                self.problem(aliases_node, f'"aliases" of {what} must be a non-empty list')
            elif not all(isinstance(alias, str) and alias.strip() for alias in raw):
                self.problem(aliases_node, f"every alias of {what} must be a non-empty string")
            else:
                aliases = [str(alias) for alias in raw]
        if entity_id is None or not aliases:
            return None
        return WatchedEntity(entity_id, name or entity_id, tuple(aliases)), node

    def subscription(
        self, node: yaml.Node, entity_ids: set[str]
    ) -> tuple[Subscription, yaml.Node] | None:
        fields = self.mapping(node, SUBSCRIPTION_KEYS, "a subscription")
        if not fields:
            return None
        sub_id = self.ident(fields, "a subscription")
        what = f'subscription "{sub_id}"' if sub_id else "a subscription"
        name = self.text(fields, "name", what, required=False)
        query = self.text(fields, "query", what, required=True)
        paused = False
        if "paused" in fields:
            paused_value = self.value(fields["paused"])
            if not isinstance(paused_value, bool):
                self.problem(fields["paused"], f'"paused" of {what} must be true or false')
            paused = paused_value is True
        notify = self.notify(fields.get("notify"), what)
        if query is not None and sub_id is not None:
            message = query_problem(sub_id, query, entity_ids, self.regex_ms)
            if message:  # reported; the subscription is still kept for the duplicate-id check
                self.problem(fields["query"], message)
        if sub_id is None or query is None:
            return None
        return Subscription(sub_id, query, name or sub_id, paused, notify), node

    def notify(self, node: yaml.Node | None, what: str) -> tuple[Any, ...]:
        """The ``notify:`` targets, each checked (when a policy is set) at its own line."""
        if node is None:
            return ()
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f'"notify" of {what} must be a list')
            return ()
        targets = []
        for item in node.value:
            value = self.value(item)
            if self.targets is not None:
                try:
                    validate_target(value, self.targets)
                except ValueError as exc:
                    self.problem(item, f"a target of {what}: {exc}")
            targets.append(value)
        return tuple(targets)

    def unique(self, items: list[tuple[str, yaml.Node]], kind: str) -> None:
        first: dict[str, int] = {}
        for item_id, node in items:
            line = node.start_mark.line + 1
            if item_id in first:
                self.problem(
                    node, f'duplicate {kind} id "{item_id}" (first at line {first[item_id]})'
                )
            else:
                first[item_id] = line
