"""Match state in Redis: which subscriptions each post matched, which text alerted whom, and
the stream of alerts that go out.

Keys (all under ``constants.KEY_PREFIX``):

- ``matched:<channel>/<id>`` — set of subscription ids any version of the post matched.
- ``alerted:<subscription>:<text key>`` — the post key whose text first alerted the
  subscription (``SET NX``: the first writer wins, even across workers).
- ``alerts`` — a stream (capped) of the alerts that go out, ``{"alert": <Alert JSON>}``.
- ``decided:<channel>/<id>@<hash>`` — the alerts decided for a post version, kept a day so a
  retried batch hands the same alerts to delivery instead of deciding again. Stored by
  reference to the post: the alerts without the post and its enrichment, which a retry has in
  hand. Written in the same transaction as the rest of the outcome, so a worker that dies
  never leaves an alert recorded but not decided (the redo would take it for an edit).
- ``owner-alerts:<owner>`` — a stream (capped) of one API owner's alerts, so a tenant's page of
  alerts is one read however many alerts of others the main stream holds; an alert goes in once
  (``owner-alerted:<owner>:<alert id>``, kept as long as a decision is), even when a retried
  batch hands it to delivery again.

The worker goes through a batch of posts in two round trips (``workers.pipeline``): one
pipeline of reads that also claims the texts (``queue_claims``: what ``prior`` and ``record``'s
claims do, atomically per post, in one script), and one transaction of writes
(``queue_record``). ``prior`` and ``record`` are the same rules one post at a time (the
``MatchState`` protocol of ``service.core.alerting``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import redis
from redis.client import Pipeline

from service import constants
from service.core.alerting import PriorState
from service.core.model import Alert
from service.redis import text
from service.store.batch import Batch, LuaScript


def matched_key(post_key: str) -> str:
    return f"{constants.MATCHED_POST_PREFIX}{post_key}"


def alerted_key(subscription_id: str, text_key: str) -> str:
    return f"{constants.ALERTED_TEXT_PREFIX}{subscription_id}:{text_key}"


def decided_key(version_key: str) -> str:
    return f"{constants.DECIDED_PREFIX}{version_key}"


# Adds an alert to its owner's stream unless it is there already (a retried batch).
_INDEX_OWNER_ALERT = LuaScript("""
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'alert', ARGV[1])
  return 1
end
return 0
""")


# Owners that read their alerts through the API (``service.store.subscription.api_subscriber``).
API_OWNER = "api:"


def owner_alerts_key(owner: str) -> str:
    return f"{constants.OWNER_ALERTS_PREFIX}{owner}"


# Per post of a batch: what earlier versions matched, and a claim on the text for every other
# subscription it matches (SET NX; the key then names the post that alerted first). Atomic per
# post, and run in batch order, so two copies of one text in a batch see each other's claims.
# KEYS[1] matched set; ARGV: post key, text key ('' when none), claim TTL, then subscription ids.
_CLAIM_SCRIPT = """
local matched = redis.call('SMEMBERS', KEYS[1])
local winners = {}
if ARGV[2] ~= '' then
  local before = {}
  for _, sub in ipairs(matched) do before[sub] = true end
  for i = 4, #ARGV do
    local sub = ARGV[i]
    local winner = ''
    if not before[sub] then
      local key = 'PREFIX' .. sub .. ':' .. ARGV[2]
      if redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[3]) then
        winner = ARGV[1]
      else
        winner = redis.call('GET', key) or ARGV[1]
      end
    end
    winners[#winners + 1] = winner
  end
end
return {matched, winners}
""".replace("PREFIX", constants.ALERTED_TEXT_PREFIX)
_CLAIM = LuaScript(_CLAIM_SCRIPT)

# The JSON of an alert without its post and enrichment: what ``decided`` keeps.
_BY_REFERENCE = ("post", "enrichment")


def _compact(alert: Alert) -> dict[str, Any]:
    data = alert.to_dict()
    for name in _BY_REFERENCE:
        del data[name]
    return data


def alert_json(alert: Alert, post_json: str, enrichment_json: str) -> str:
    """``alert.to_dict()`` as JSON with the post's and enrichment's JSON spliced in: a post's
    alerts share them, so they are encoded once per post, not once per alert."""
    body = json.dumps(_compact(alert), ensure_ascii=False)
    return f'{body[:-1]}, "post": {post_json}, "enrichment": {enrichment_json}}}'


class RedisMatchState:
    """The workers' MatchState (see ``service.core.alerting``), one post at a time (``prior``,
    ``record``) or a batch at a time (``queue_claims``, ``queue_record``)."""

    def __init__(self, client: redis.Redis, stream: str = constants.ALERTS_STREAM) -> None:
        self.client = client
        self.stream = stream

    @staticmethod
    def _owner_alert_call(alert: Alert, owner: str | None) -> tuple[list[str], list[Any]] | None:
        """The index script's keys and args for an outgoing alert of an API owner (an ``api:``
        owner: the operator reads the main stream, a bot chat gets its alerts as messages)."""
        if owner is None or not owner.startswith(API_OWNER) or alert.suppressed is not None:
            return None
        keys = [f"{constants.OWNER_ALERTED_PREFIX}{owner}:{alert.id}", owner_alerts_key(owner)]
        args: list[Any] = [
            json.dumps(alert.to_dict(), ensure_ascii=False),
            constants.DECIDED_TTL_SECONDS,
            constants.OWNER_ALERTS_MAXLEN,
        ]
        return keys, args

    def index_owner_alert(self, alert: Alert, owner: str | None) -> bool:
        """Put an outgoing alert in its owner's stream, once (a retried batch hands it over
        again). One round trip. True when added."""
        call = self._owner_alert_call(alert, owner)
        return call is not None and bool(_INDEX_OWNER_ALERT(self.client, *call))

    def queue_owner_alert(self, batch: Batch, alert: Alert, owner: str | None) -> None:
        """``index_owner_alert`` queued on a batch (the post stage's write transaction)."""
        call = self._owner_alert_call(alert, owner)
        if call is not None:
            batch.script(_INDEX_OWNER_ALERT, *call)

    # --- one post at a time (the MatchState protocol) ------------------------------------------
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

    def decided(self, version_keys: Sequence[str]) -> list[list[dict[str, Any]] | None]:
        """The decided records of post versions, as stored (alerts without their post)."""
        if not version_keys:
            return []
        raw = self.client.mget([decided_key(key) for key in version_keys])
        return [None if item is None else list(json.loads(item)) for item in raw]

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
        if version_key is not None:
            self._queue_decided(pipe, version_key, final)
        self._queue_outcome(pipe, post_key, final, None)
        pipe.execute()
        return final

    # --- a batch at a time ---------------------------------------------------------------------
    def queue_decided(self, batch: Batch, version_keys: Sequence[str]) -> None:
        """Queue the read of what earlier attempts decided for these versions (one MGET);
        decode its reply with ``decode_decided`` per version."""
        batch.pipe.mget([decided_key(key) for key in version_keys])

    def queue_claims(
        self, batch: Batch, post_key: str, text_key: str | None, subscription_ids: Sequence[str]
    ) -> None:
        """Queue the read of one post's prior state, claiming its text for ``subscription_ids``
        that no earlier version matched (``claims_prior`` decodes the reply). Queue the posts of
        a batch in batch order: a later copy of the same text then sees the earlier one's
        claim. Leave out subscriptions an earlier version in the same batch matched."""
        args = [post_key, text_key or "", constants.ALERTED_TEXT_TTL_SECONDS, *subscription_ids]
        batch.script(_CLAIM, [matched_key(post_key)], args)

    @staticmethod
    def claims_prior(
        reply: Any,
        subscription_ids: Sequence[str],
        earlier: Collection[str] = (),
        *,
        earlier_version: bool = False,
    ) -> PriorState:
        """The prior state from a ``queue_claims`` reply: what earlier versions matched (in
        Redis, and ``earlier`` in the same batch), and who first alerted each claimed text;
        ``earlier_version`` when the caller knows an earlier version of the post exists."""
        matched_raw, winners = reply
        matched = frozenset(text(member) for member in matched_raw) | frozenset(earlier)
        alerted = {
            sub: text(winner)
            for sub, winner in zip(subscription_ids, winners or (), strict=False)
            if winner
        }
        return PriorState(matched, alerted, earlier_version)

    def queue_record(
        self,
        batch: Batch,
        version_key: str,
        post_key: str,
        alerts: Sequence[Alert],
        json_parts: tuple[str, str],
    ) -> None:
        """Queue the writes of one post version's alerts: the decided record (by reference to
        the post), the subscriptions it matched, and the outgoing alerts on the stream.
        ``json_parts`` are the post's and its enrichment's JSON, shared by its alerts."""
        if not alerts:
            return
        self._queue_decided(batch.pipe, version_key, alerts)
        self._queue_outcome(batch.pipe, post_key, alerts, json_parts)

    @staticmethod
    def _queue_decided(pipe: Pipeline, version_key: str, alerts: Sequence[Alert]) -> None:
        pipe.set(
            decided_key(version_key),
            json.dumps([_compact(alert) for alert in alerts], ensure_ascii=False),
            ex=constants.DECIDED_TTL_SECONDS,
        )

    def _queue_outcome(
        self,
        pipe: Pipeline,
        post_key: str,
        alerts: Sequence[Alert],
        json_parts: tuple[str, str] | None,
    ) -> None:
        key = matched_key(post_key)
        pipe.sadd(key, *{alert.subscription_id for alert in alerts})
        pipe.expire(key, constants.MATCHED_POST_TTL_SECONDS)
        for alert in alerts:
            if alert.suppressed is None:
                if json_parts is None:
                    body = json.dumps(alert.to_dict(), ensure_ascii=False)
                else:
                    body = alert_json(alert, *json_parts)
                pipe.xadd(
                    self.stream,
                    {"alert": body},
                    maxlen=constants.ALERTS_STREAM_MAXLEN,
                    approximate=True,
                )


def decode_decided(
    raw: bytes | str, post: dict[str, Any], enrichment: dict[str, Any]
) -> list[Alert]:
    """Alerts from a ``decided`` record, with ``post`` and ``enrichment`` (JSON forms) filled
    in where the record holds them by reference (records of older versions hold them)."""
    alerts = []
    for item in json.loads(raw):
        item.setdefault("post", post)
        item.setdefault("enrichment", enrichment)
        alerts.append(Alert.from_dict(item))
    return alerts


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
