"""A whole setup (entities, subscriptions, where alerts go) kept in one rules file: import and
export (`tgwatch subscriptions import|export`, `tgwatch rules load`, TGWATCH_RULES_FILE).

Import validates with the rule engine's loader (``service.core.rules``) and the targets'
checks (``service.core.targets``, under the settings' policy), then writes through the
subscription store in one rule-set transaction; running it twice changes nothing the second
time. Export writes the same YAML back, webhook secrets decrypted when they are stored encrypted
(``service.core.secretbox``): the file is the operator's own, as plain as it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import redis
import yaml

from service.core import secretbox
from service.core.memory import collector_paused
from service.core.model import WatchedEntity
from service.core.rules import RuleSet
from service.core.secretbox import SecretBox, SecretUnavailableError
from service.core.targets import STRICT, TargetPolicy
from service.store.rules import RulesWrite
from service.store.subscribers import StoredSubscription, SubscriberStore, validate_targets

# Ids listed per kind of change in a summary: a 100k-subscription import prints its counts and
# the first of each, not 100k lines.
IDS_LISTED = 50


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
            out.extend(f"  {label}: {sub_id}" for sub_id in ids[:IDS_LISTED])
            if len(ids) > IDS_LISTED:
                out.append(f"  {label}: ... and {len(ids) - IDS_LISTED} more")
        return out


def _file_view(sub: StoredSubscription, box: SecretBox) -> dict[str, Any] | None:
    """What the rules file says of a subscription, secrets opened (a stored one may be sealed,
    a file's never is); None when a secret does not open (then the file's replaces it)."""
    try:
        return file_dict(sub, box)
    except SecretUnavailableError:
        return None


def file_dict(sub: StoredSubscription, box: SecretBox) -> dict[str, Any]:
    """A stored subscription in its rules-file form, secrets opened: the file is the operator's
    own setup, as plain as it was written. SecretUnavailableError when one does not open."""
    data = sub.file_dict()
    if "notify" in data:
        data["notify"] = [box.open_target(target) for target in data["notify"]]
    return data


def import_ruleset(
    client: redis.Redis,
    ruleset: RuleSet,
    *,
    prune: bool = False,
    policy: TargetPolicy = STRICT,
) -> ImportSummary:
    """Bring the stored setup in line with ``ruleset`` in one transaction (one rules-version
    bump, so workers compile the whole import once); ValueError when a target is invalid or
    refused under ``policy`` (nothing is written then)."""
    with collector_paused():  # 100k subscriptions' records: no collection walks them meanwhile
        return _import(client, ruleset, prune, policy)


def _import(
    client: redis.Redis, ruleset: RuleSet, prune: bool, policy: TargetPolicy
) -> ImportSummary:
    summary = ImportSummary()
    store = SubscriberStore(client)
    box = secretbox.installed()
    incoming: list[StoredSubscription] = []
    for rule in ruleset.subscriptions:
        try:
            targets = validate_targets(rule.notify, policy)
        except ValueError as exc:
            raise ValueError(f'subscription "{rule.id}": {exc}') from None
        incoming.append(
            StoredSubscription(
                rule.id, rule.query, rule.name or rule.id, tuple(targets), rule.paused
            )
        )
    stored_entities = store.rules.entities()
    existing = {sub.id: sub for sub in store.all()}
    writes: list[StoredSubscription] = []
    for new in incoming:
        old = existing.get(new.id)
        if old is None:
            summary.added.append(new.id)
            writes.append(new)
        elif (old_view := _file_view(old, box)) is not None and old_view == _file_view(new, box):
            summary.unchanged.append(new.id)
        else:
            summary.changed.append(new.id)
            # What the file does not say (owner, mode, mute) stays as it was.
            writes.append(
                replace(old, query=new.query, name=new.name, targets=new.targets, paused=new.paused)
            )
    # A rules file is the operator's setup: pruning removes the operator's subscriptions it
    # lacks, never a subscriber's (a tenant's or a chat's, which have an owner).
    operators = {sub_id for sub_id, sub in existing.items() if sub.owner is None}
    removed = sorted(operators - {sub.id for sub in incoming}) if prune else []
    with store.rules.write() as batch:
        _import_entities(batch, stored_entities, ruleset.entities, prune, summary)
        store.write(writes, {sub.id: existing.get(sub.id) for sub in writes}, batch)
        store.delete_many([existing[sub_id] for sub_id in removed], batch)
    summary.removed.extend(removed)
    return summary


def _import_entities(
    batch: RulesWrite,
    stored: dict[str, WatchedEntity],
    entities: tuple[WatchedEntity, ...],
    prune: bool,
    summary: ImportSummary,
) -> None:
    writes: list[WatchedEntity] = []
    for entity in entities:
        old = stored.get(entity.id)
        if old is None:
            summary.entities["added"].append(entity.id)
        elif old.to_dict() == entity.to_dict():
            summary.entities["unchanged"].append(entity.id)
            continue
        else:
            summary.entities["changed"].append(entity.id)
        writes.append(entity)
    removed = sorted(set(stored) - {e.id for e in entities}) if prune else []
    summary.entities["removed"] = removed
    batch.put_entities(writes)
    batch.delete_entities(*removed)


def export_document(client: redis.Redis, box: SecretBox | None = None) -> dict[str, Any]:
    """The stored setup as a rules-file document, webhook secrets decrypted (``box``, else the
    process's); ValueError naming the subscription whose secret does not decrypt."""
    box = box if box is not None else secretbox.installed()
    store = SubscriberStore(client)
    entities = sorted(store.rules.entities().values(), key=lambda e: e.id)
    subs = store.all()
    document: dict[str, Any] = {}
    if entities:
        document["entities"] = [
            {"id": e.id, "name": e.name, "aliases": list(e.aliases)} for e in entities
        ]
    document["subscriptions"] = []
    for sub in subs:
        try:
            document["subscriptions"].append(file_dict(sub, box))
        except SecretUnavailableError as exc:
            raise ValueError(f"subscription {sub.id}: {exc}") from None
    return document


def export_yaml(client: redis.Redis, box: SecretBox | None = None) -> str:
    return yaml.safe_dump(
        export_document(client, box), sort_keys=False, allow_unicode=True, width=100
    )
