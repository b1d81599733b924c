"""Match state in Redis: which subscriptions each post matched, which text alerted whom, and
the stream of alerts that go out.

Keys (all under ``constants.KEY_PREFIX``):

- ``matched:<channel>/<id>`` — set of subscription ids any version of the post matched.
- ``alerted:<subscription>:<text key>`` — the post key whose text first alerted the
  subscription (``SET NX``: the first writer wins, even across workers).
- ``alerts`` — a stream (capped) of the alerts that go out, ``{"alert": <Alert JSON>}``.
- ``decided:<channel>/<id>@<hash>`` — the alerts decided for a post version, kept a day so a
  retried batch hands the same alerts to delivery instead of deciding again.
- ``owner-alerts:<owner>`` — a stream (capped) of one API owner's alerts, so a tenant's page of
  alerts is one read however many alerts of others the main stream holds; an alert goes in once
  (``owner-alerted:<owner>:<alert id>``, kept as long as a decision is), even when a retried
  batch hands it to delivery again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import redis

from service import constants
from service.core.alerting import PriorState
from service.core.model import Alert
from service.redis import text


def matched_key(post_key: str) -> str:
    return f"{constants.MATCHED_POST_PREFIX}{post_key}"


def alerted_key(subscription_id: str, text_key: str) -> str:
    return f"{constants.ALERTED_TEXT_PREFIX}{subscription_id}:{text_key}"


def decided_key(version_key: str) -> str:
    return f"{constants.DECIDED_PREFIX}{version_key}"


# Adds an alert to its owner's stream unless it is there already (a retried batch).
_INDEX_OWNER_ALERT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'alert', ARGV[1])
  return 1
end
return 0
"""


# Owners that read their alerts through the API (``service.store.subscription.api_subscriber``).
API_OWNER = "api:"


def owner_alerts_key(owner: str) -> str:
    return f"{constants.OWNER_ALERTS_PREFIX}{owner}"


class RedisMatchState:
    """The workers' MatchState (see ``service.core.alerting``): two reads and one write round
    trip per post version, whatever the number of matches."""

    def __init__(self, client: redis.Redis, stream: str = constants.ALERTS_STREAM) -> None:
        self.client = client
        self.stream = stream
        self._index_owner = client.register_script(_INDEX_OWNER_ALERT)

    def index_owner_alert(self, alert: Alert, owner: str | None) -> bool:
        """Put an outgoing alert in its owner's stream, once, when the owner reads its alerts
        through the API (an ``api:`` owner; the operator reads the main stream, and a bot chat
        gets its alerts as messages). One round trip. True when added."""
        if owner is None or not owner.startswith(API_OWNER) or alert.suppressed is not None:
            return False
        added = self._index_owner(
            keys=[f"{constants.OWNER_ALERTED_PREFIX}{owner}:{alert.id}", owner_alerts_key(owner)],
            args=[
                json.dumps(alert.to_dict(), ensure_ascii=False),
                constants.DECIDED_TTL_SECONDS,
                constants.OWNER_ALERTS_MAXLEN,
            ],
        )
        return bool(added)

    def prior(
        self, post_key: str, text_key: str | None, subscription_ids: Collection[str]
    ) -> PriorState:
        if not subscription_ids:
            return PriorState()
        ids = list(subscription_ids)
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(matched_key(post_key))
        if text_key is not None:
            pipe.mget([alerted_key(sub, text_key) for sub in ids])
        replies = pipe.execute()
        matched = frozenset(text(member) for member in replies[0])
        alerted: dict[str, str] = {}
        if text_key is not None:
            for sub, first in zip(ids, replies[1], strict=True):
                if first is not None:
                    alerted[sub] = text(first)
        return PriorState(matched, alerted)

    def decided(self, version_keys: Sequence[str]) -> list[list[Alert] | None]:
        """The alerts an earlier attempt decided for each post version (None: not decided)."""
        if not version_keys:
            return []
        raw = self.client.mget([decided_key(key) for key in version_keys])
        return [
            None if item is None else [Alert.from_dict(a) for a in json.loads(item)] for item in raw
        ]

    def record(
        self,
        post_key: str,
        text_key: str | None,
        alerts: Sequence[Alert],
        version_key: str | None = None,
    ) -> list[Alert]:
        """Record the alerts of a post version and, with ``version_key``, keep them as decided
        for a retried batch — in one transaction: a worker that dies before it leaves nothing
        recorded (the redo decides afresh), after it leaves the decision to reuse (never a
        recorded alert that the redo would take for an edit and suppress)."""
        if not alerts:
            return []
        outgoing = [i for i, a in enumerate(alerts) if a.suppressed is None and text_key]
        claims: list[Any] = []
        if outgoing and text_key is not None:
            pipe = self.client.pipeline(transaction=False)
            for i in outgoing:
                claim = alerted_key(alerts[i].subscription_id, text_key)
                pipe.set(claim, post_key, nx=True, ex=constants.ALERTED_TEXT_TTL_SECONDS)
                pipe.get(claim)
            claims = pipe.execute()[1::2]
        final = list(alerts)
        for i, previous in zip(outgoing, claims, strict=True):
            # After SET NX the key holds the winner: another post's key means it got there first.
            # (SET NX GET would save a reply but needs Redis 7; the embedded server is 6.2.)
            if previous is not None and text(previous) != post_key:
                final[i] = replace(final[i], suppressed="duplicate", duplicate_of=text(previous))
        pipe = self.client.pipeline(transaction=True)
        key = matched_key(post_key)
        pipe.sadd(key, *{alert.subscription_id for alert in final})
        pipe.expire(key, constants.MATCHED_POST_TTL_SECONDS)
        for alert in final:
            if alert.suppressed is None:
                pipe.xadd(
                    self.stream,
                    {"alert": json.dumps(alert.to_dict(), ensure_ascii=False)},
                    maxlen=constants.ALERTS_STREAM_MAXLEN,
                    approximate=True,
                )
        if version_key is not None:
            pipe.set(
                decided_key(version_key),
                json.dumps([alert.to_dict() for alert in final], ensure_ascii=False),
                ex=constants.DECIDED_TTL_SECONDS,
            )
        pipe.execute()
        return final


def read_alerts(
    client: redis.Redis, count: int = 100, stream: str = constants.ALERTS_STREAM
) -> list[tuple[str, Alert]]:
    """The oldest ``count`` alerts of the stream with their entry ids (for tools and tests)."""
    entries: Any = client.xrange(stream, count=count)
    return [
        (text(entry_id), Alert.from_dict(json.loads(fields[b"alert"])))
        for entry_id, fields in entries
    ]


def alerts_page(
    client: redis.Redis,
    before: str,
    limit: int,
    *,
    owner: str | None = None,
    stream: str = constants.ALERTS_STREAM,
) -> tuple[list[tuple[str, Alert]], str | None]:
    """Alerts older than the entry ``before`` (``+``: the newest), newest first: every alert,
    or ``owner``'s from its own stream; returns them with their entry ids and the cursor of the
    next page (None at the end). One XREVRANGE whatever the streams hold. ResponseError when
    ``before`` is not a stream id."""
    key = stream if owner is None else owner_alerts_key(owner)
    raw: Any = client.xrevrange(key, max=before, count=limit + 1) or []
    entries = [(text(entry_id), fields or {}) for entry_id, fields in raw]
    if before != "+":
        entries = [entry for entry in entries if entry[0] != before]
    page = entries[:limit]
    found = [(entry_id, Alert.from_dict(json.loads(fields[b"alert"]))) for entry_id, fields in page]
    more = len(entries) > limit
    return found, (found[-1][0] if found and more else None)
