"""`tgwatch subscriptions import|export`: a whole setup (entities, subscriptions, where alerts
go) kept in one rules file.

Import validates with the rule engine's loader (``service.core.rules``) and the delivery
module's target parser, then writes through the subscription store; running it twice changes
nothing the second time. Export writes the same YAML back.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import redis
import yaml
from redis.typing import EncodableT, FieldT

from service import constants
from service.core.model import WatchedEntity
from service.core.rules import RulesError, RuleSet, load_rules
from service.querytools import stored_entities
from service.store.subscribers import StoredSubscription, SubscriberStore, validate_targets


@dataclass
class ImportSummary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    entities: dict[str, list[str]] = field(
        default_factory=lambda: {"added": [], "changed": [], "unchanged": [], "removed": []}
    )

    def lines(self) -> list[str]:
        subs = (
            f"subscriptions: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed"
        )
        ent = self.entities
        entities = (
            f"entities: {len(ent['added'])} added, {len(ent['changed'])} changed, "
            f"{len(ent['unchanged'])} unchanged, {len(ent['removed'])} removed"
        )
        out = [subs, entities]
        for label, ids in (
            ("added", self.added),
            ("changed", self.changed),
            ("removed", self.removed),
        ):
            out.extend(f"  {label}: {sub_id}" for sub_id in ids)
        return out


def _file_view(sub: StoredSubscription) -> dict[str, Any]:
    return sub.file_dict()


def import_ruleset(client: redis.Redis, ruleset: RuleSet, *, prune: bool = False) -> ImportSummary:
    """Bring the stored setup in line with ``ruleset``; ValueError when a target is invalid."""
    summary = ImportSummary()
    store = SubscriberStore(client)
    incoming: list[StoredSubscription] = []
    for rule in ruleset.subscriptions:
        try:
            targets = validate_targets(rule.notify)
        except ValueError as exc:
            raise ValueError(f'subscription "{rule.id}": {exc}') from None
        incoming.append(
            StoredSubscription(
                rule.id, rule.query, rule.name or rule.id, tuple(targets), rule.paused
            )
        )
    _import_entities(client, ruleset.entities, prune, summary)
    existing = {sub.id: sub for sub in store.all()}
    writes: list[StoredSubscription] = []
    for new in incoming:
        old = existing.get(new.id)
        if old is None:
            summary.added.append(new.id)
            writes.append(new)
        elif _file_view(old) == _file_view(new):
            summary.unchanged.append(new.id)
        else:
            summary.changed.append(new.id)
            # What the file does not say (owner, mode, mute) stays as it was.
            writes.append(
                replace(old, query=new.query, name=new.name, targets=new.targets, paused=new.paused)
            )
    for sub in writes:
        store.put(sub)
    if prune:
        keep = {sub.id for sub in incoming}
        for sub_id in sorted(set(existing) - keep):
            store.delete(sub_id)
            summary.removed.append(sub_id)
    return summary


def _import_entities(
    client: redis.Redis, entities: tuple[WatchedEntity, ...], prune: bool, summary: ImportSummary
) -> None:
    stored = stored_entities(client)
    writes: dict[FieldT, EncodableT] = {}
    for entity in entities:
        old = stored.get(entity.id)
        if old is None:
            summary.entities["added"].append(entity.id)
        elif old.to_dict() == entity.to_dict():
            summary.entities["unchanged"].append(entity.id)
            continue
        else:
            summary.entities["changed"].append(entity.id)
        writes[entity.id] = json.dumps(entity.to_dict(), ensure_ascii=False, sort_keys=True)
    removed = sorted(set(stored) - {e.id for e in entities}) if prune else []
    summary.entities["removed"] = removed
    if not writes and not removed:
        return
    pipe = client.pipeline(transaction=True)
    if writes:
        pipe.hset(constants.RULES_ENTITIES_KEY, mapping=writes)
    if removed:
        pipe.hdel(constants.RULES_ENTITIES_KEY, *removed)
    pipe.incr(constants.RULES_VERSION_KEY)
    pipe.execute()


def export_document(client: redis.Redis) -> dict[str, Any]:
    """The stored setup as a rules-file document."""
    entities = sorted(stored_entities(client).values(), key=lambda e: e.id)
    subs = SubscriberStore(client).all()
    document: dict[str, Any] = {}
    if entities:
        document["entities"] = [
            {"id": e.id, "name": e.name, "aliases": list(e.aliases)} for e in entities
        ]
    document["subscriptions"] = [sub.file_dict() for sub in subs]
    return document


def export_yaml(client: redis.Redis) -> str:
    return yaml.safe_dump(export_document(client), sort_keys=False, allow_unicode=True, width=100)


# --- CLI ---------------------------------------------------------------------------------------
@click.group("subscriptions")
def subscriptions() -> None:
    """Import or export subscriptions (with where their alerts go) as a rules file."""


@subscriptions.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Remove stored subscriptions the file lacks.")
def import_command(path: Path, prune: bool) -> None:
    """Load PATH (idempotent) and print what was added, changed, unchanged, removed."""
    from service.cli import open_root

    try:
        ruleset = load_rules(path)
    except RulesError as exc:
        for problem in exc.problems:
            where = f"{path}:{problem.line}" if problem.line else str(path)
            click.echo(f"{where}: {problem.message}", err=True)
        sys.exit(1)
    with open_root() as root:
        try:
            summary = import_ruleset(root.redis.client, ruleset, prune=prune)
        except ValueError as exc:
            click.echo(f"{path}: {exc}", err=True)
            sys.exit(1)
    for line in summary.lines():
        click.echo(line)


@subscriptions.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def export_command(output: Path | None) -> None:
    """Write the stored entities and subscriptions (with notify targets) as YAML."""
    from service.cli import open_root

    with open_root() as root:
        text = export_yaml(root.redis.client)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
