"""`tgwatch secrets rotate`: every stored webhook secret sealed under the first key of
TGWATCH_SECRETS_KEY — plain ones (stored before the key was set) encrypted, ones sealed under an
older key re-encrypted — so the older key can then be dropped.

The subscriptions are rewritten in batches through ``RuleStore.rewrite``: each batch is one
optimistic transaction (a subscription changed meanwhile by the API or the bot is read again,
never overwritten with a stale record) with one rule-set version bump, so the workers compile
the new records once per batch, not once per subscription. A subscription whose secret no key
opens is left as it is and reported by id; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from service.core.secretbox import SecretBox, SecretUnavailableError, is_sealed, map_record
from service.store.rules import RuleStore

# Subscriptions per transaction: large enough that a 100k store is 200 version bumps, small
# enough that a transaction started again after a concurrent write redoes little.
BATCH = 500

ENCRYPTED = "encrypted"  # had a plain secret
ROTATED = "rotated"  # had a secret sealed under an older key
CURRENT = "current"  # every secret already under the first key
NO_SECRET = "none"  # no webhook target


@dataclass
class RotationSummary:
    checked: int = 0
    kinds: dict[str, int] = field(
        default_factory=lambda: {ENCRYPTED: 0, ROTATED: 0, CURRENT: 0, NO_SECRET: 0}
    )
    rewritten: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # subscription id -> why (no secret)

    def lines(self, *, dry_run: bool = False) -> list[str]:
        verb = "would be" if dry_run else "were"
        kinds = self.kinds
        out = [
            f"subscriptions: {self.checked} checked, {kinds[NO_SECRET]} without a webhook",
            f"webhook secrets: {kinds[ENCRYPTED]} subscription(s) with plain secrets and "
            f"{kinds[ROTATED]} with secrets under an older key {verb} encrypted under the first "
            f"key; {kinds[CURRENT]} already were",
        ]
        if not dry_run:
            out.append(f"rewritten: {self.rewritten} subscription(s)")
        out.extend(f"  failed: {sub_id}: {reason}" for sub_id, reason in self.failed.items())
        return out


def _kind(record: dict[str, Any], box: SecretBox) -> str:
    """How the secrets of one record stand against the first key."""
    values: list[str] = []

    def collect(value: str) -> str:
        values.append(value)
        return value

    map_record(record, collect)
    if not values:
        return NO_SECRET
    if any(not is_sealed(value) for value in values):
        return ENCRYPTED
    return CURRENT if all(box.current(value) for value in values) else ROTATED


def rotate_secrets(
    client: redis.Redis,
    box: SecretBox,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RotationSummary:
    """Seal every stored webhook secret under ``box``'s first key; ``progress(done, total)``
    after each batch. ValueError when ``box`` has no key."""
    if not box.enabled:
        raise ValueError("TGWATCH_SECRETS_KEY is not set: there is no key to encrypt with")
    store = RuleStore(client, box)
    ids = store.subscription_ids()
    summary = RotationSummary()
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        seen: dict[str, str] = {}
        failed: dict[str, str] = {}

        def change(record: dict[str, Any], seen: dict[str, str] = seen,
                   failed: dict[str, str] = failed) -> dict[str, Any] | None:  # fmt: skip
            sub_id = str(record.get("id"))
            failed.pop(sub_id, None)  # a transaction started again sees the record anew
            try:
                seen[sub_id] = _kind(record, box)
                if seen[sub_id] in (CURRENT, NO_SECRET):
                    return None
                new = box.reseal_record(record)
            except SecretUnavailableError as exc:
                seen.pop(sub_id, None)
                failed[sub_id] = str(exc)
                return None
            return None if dry_run else new

        if dry_run:
            for record in store.records(chunk):
                change(record)
        else:
            summary.rewritten += len(store.rewrite(chunk, change))
        summary.checked += len(seen) + len(failed)
        for kind in seen.values():
            summary.kinds[kind] += 1
        summary.failed.update(failed)
        if progress is not None:
            progress(min(start + batch, len(ids)), len(ids))
    return summary
