"""Webhook secrets encrypted at rest (TGWATCH_SECRETS_KEY): no plain secret anywhere in Redis —
subscription records, delivery jobs, dead letters —, deliveries still verify at a real receiver,
keys rotate, plain and encrypted records live side by side, and a secret no key opens is a dead
letter naming its subscription, never a lost or looping delivery."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

import pytest
import redis
import yaml
from click.testing import CliRunner
from pydantic import SecretStr
from structlog.testing import capture_logs

from service.cli import cli
from service.core import secretbox
from service.core.delivery import DeliveryJob, DeliveryStatus, parse_target
from service.core.rules import parse_rules
from service.core.secretbox import PLAIN, SEALED_PREFIX, SecretBox
from service.delivery_queue import deliveries_queue, enqueue_deliveries, redeliver
from service.secrets_rotation import rotate_secrets
from service.store.deliveries import Ledger
from service.store.rules import RuleStore
from service.store.subscribers import StoredSubscription, SubscriberStore
from service.subscriptions_file import export_yaml, import_ruleset
from tests.delivery.conftest import SECRET, ContextFactory, Scheduled, make_alert
from tests.delivery.receiver import WebhookReceiver
from tests.security.conftest import Api
from workers.delivery.dispatch import process

KEY_OLD = "old-key-0123456789abcdef"
KEY_NEW = "new-key-fedcba9876543210"
KEY_WRONG = "wrong-key-000000000000000"
PUBLIC_HOOK = {"webhook": {"url": "https://example.org/hook?token=in-the-query", "secret": SECRET}}


def box(*keys: str) -> SecretBox:
    return SecretBox([SecretStr(key) for key in keys])


@pytest.fixture(autouse=True)
def plain_afterwards() -> Iterator[None]:
    """Every test installs the box it needs; the next one starts from the plain box again."""
    yield
    secretbox.install(PLAIN)


def everything(client: redis.Redis) -> str:
    """Every value in the database as text, RQ's compressed job data decompressed."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            parts.extend(v for pair in client.hgetall(key).items() for v in pair)
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(client.smembers(key))
        elif kind == "zset":
            parts.extend(client.zrange(key, 0, -1))
        elif kind == "stream":
            for _, fields in client.xrange(key):
                parts.extend(v for pair in fields.items() for v in pair)
    found = []
    for part in parts:
        try:
            found.append(zlib.decompress(part).decode("utf-8", "replace"))
        except zlib.error:
            found.append(part.decode("utf-8", "replace"))
    return "\n".join(found)


def _sub(sub_id: str, url: str, secret: str | list[str] = SECRET) -> StoredSubscription:
    target = {"webhook": {"url": url, "secret": secret}}
    return StoredSubscription(sub_id, "лавров", sub_id, (target,))


def _queued_jobs(client: redis.Redis, sub_ids: list[str], first: int = 1) -> list[DeliveryJob]:
    """Enqueue one alert per subscription the way the post stage does (its stored ``notify``)
    and take the jobs back off the real queue."""
    _, ruleset = RuleStore(client).load()
    queue = deliveries_queue(client)
    for index, sub in enumerate(s for s in ruleset.subscriptions if s.id in sub_ids):
        alert = make_alert(first + index, subscription_id=sub.id)
        enqueue_deliveries(queue, alert, [dict(t) for t in sub.notify], subscription_name=sub.id)
    return [DeliveryJob.from_dict(job.args[0]) for job in queue.get_jobs()]


def _stored_secrets(client: redis.Redis) -> list[str]:
    values: list[str] = []
    for record in RuleStore(client).records():
        for field in ("notify", "targets"):
            for target in record[field]:
                hook = target.get("webhook")
                if hook is not None:
                    secret = hook["secret"]
                    values.extend(secret if isinstance(secret, list) else [secret])
    return values


# --- nothing plain in Redis ----------------------------------------------------------------------
async def test_a_subscription_made_through_the_api_is_stored_encrypted(
    api: Api, redis_client: redis.Redis
) -> None:
    secretbox.install(box(KEY_OLD))
    status, body = await api.call(
        "POST", "/v1/subscriptions", {"id": "lavrov", "query": "Лавров", "targets": [PUBLIC_HOOK]}
    )
    assert status == 201, body
    assert body["targets"] == [{"webhook": {"url": PUBLIC_HOOK["webhook"]["url"], "secret": "***"}}]
    status, body = await api.call("GET", "/v1/subscriptions/lavrov")
    assert body["targets"][0]["webhook"]["secret"] == "***"
    raw = everything(redis_client)
    assert SECRET not in raw and SECRET.removeprefix("whsec_") not in raw
    assert raw.count(SEALED_PREFIX) == 2  # the subscriber's targets and the delivery's notify
    # A pause rewrites the record: still no plain secret, the same ciphertext.
    before = _stored_secrets(redis_client)
    assert (await api.call("PATCH", "/v1/subscriptions/lavrov", {"paused": True}))[0] == 200
    assert _stored_secrets(redis_client) == before
    assert SECRET not in everything(redis_client)


def test_delivery_jobs_and_dead_letters_hold_no_plain_secret(redis_client: redis.Redis) -> None:
    # A record written before the key was set stays plain in the store ...
    SubscriberStore(redis_client).create(_sub("before", "https://example.org/a"))
    secretbox.install(box(KEY_OLD))
    SubscriberStore(redis_client).create(_sub("after", "https://example.org/b", [SECRET, "x" * 20]))
    assert SECRET in _stored_secrets(redis_client)  # the mixed store: one plain, one sealed
    # ... but every job written to the queue is sealed, whichever record it came from.
    jobs = _queued_jobs(redis_client, ["before", "after"])
    assert len(jobs) == 2
    for job in jobs:
        assert all(s.startswith(SEALED_PREFIX) for s in job.target.secrets)  # type: ignore[union-attr]
    # A job queued before the key was set is sealed when it becomes a dead letter.
    target = parse_target({"webhook": {"url": "https://example.org/c", "secret": SECRET}})
    Ledger(redis_client).dead_letter(DeliveryJob(make_alert(9), target).to_dict(), "HTTP 500")
    raw = everything(redis_client)
    assert "https://example.org/c" in raw  # the dead letter is there ...
    assert raw.count(SECRET) == 2  # ... and the only plain copies are the old record's two


# --- delivery: opened only to sign ----------------------------------------------------------------
async def test_an_encrypted_secret_signs_a_delivery_the_receiver_verifies(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    secretbox.install(box(KEY_OLD))
    SubscriberStore(redis_client).create(_sub("lavrov", receiver.url))
    [job] = _queued_jobs(redis_client, ["lavrov"])
    scheduled = Scheduled()
    context = make_context(schedule=scheduled)
    with capture_logs() as logs:
        outcome = await process(context, job)
    assert outcome.status == DeliveryStatus.SENT
    [received] = receiver.delivered  # verified with the plain secret
    assert received.webhook_id == job.alert.id
    assert SECRET not in json.dumps(logs, default=str) + everything(redis_client)


async def test_keys_rotate_over_a_mixed_store(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    # One record from before any key, one sealed under the old key, one without a webhook.
    SubscriberStore(redis_client).create(_sub("plain", receiver.url))
    secretbox.install(box(KEY_OLD))
    SubscriberStore(redis_client).create(_sub("sealed", receiver.url))
    SubscriberStore(redis_client).create(
        StoredSubscription("chat", "x", "chat", ({"telegram": -1001},))
    )
    # Both kinds deliver under the old key ...
    scheduled = Scheduled()
    context = make_context(schedule=scheduled)
    for job in _queued_jobs(redis_client, ["plain", "sealed"]):
        assert (await process(context, job)).status == DeliveryStatus.SENT
    assert len(receiver.delivered) == 2
    deliveries_queue(redis_client).empty()

    # ... the new key goes first, the store is re-encrypted under it, a version bump a batch.
    version = RuleStore(redis_client).version()
    progress: list[tuple[int, int]] = []

    def report(done: int, total: int) -> None:
        progress.append((done, total))

    summary = rotate_secrets(redis_client, box(KEY_NEW, KEY_OLD), batch=2, progress=report)
    assert summary.kinds == {"encrypted": 1, "rotated": 1, "current": 0, "none": 1}
    assert summary.rewritten == 2 and summary.failed == {}
    assert progress == [(2, 3), (3, 3)]
    # Batches [chat, plain] and [sealed]: each changed a record, each is one bump.
    assert RuleStore(redis_client).version() == version + 2
    assert SECRET not in everything(redis_client)
    only_new = box(KEY_NEW)
    assert {only_new.open(value) for value in _stored_secrets(redis_client)} == {SECRET}
    again = rotate_secrets(redis_client, box(KEY_NEW, KEY_OLD))
    assert again.kinds["current"] == 2 and again.rewritten == 0
    assert RuleStore(redis_client).version() == version + 2  # nothing to write, no bump

    # The old key is dropped: everything still delivers.
    secretbox.install(only_new)
    context = make_context(schedule=Scheduled())
    for job in _queued_jobs(redis_client, ["plain", "sealed"], first=10):
        assert (await process(context, job)).status == DeliveryStatus.SENT
    assert len(receiver.delivered) == 4 and all(r.verified for r in receiver.received)


async def test_a_secret_no_key_opens_is_a_dead_letter_naming_its_subscription(
    receiver: WebhookReceiver, make_context: ContextFactory, redis_client: redis.Redis
) -> None:
    secretbox.install(box(KEY_OLD))
    SubscriberStore(redis_client).create(_sub("lavrov", receiver.url + "?token=in-the-query"))
    [job] = _queued_jobs(redis_client, ["lavrov"])
    deliveries_queue(redis_client).empty()
    for wrong in (box(KEY_WRONG), PLAIN):
        secretbox.install(wrong)
        scheduled = Scheduled()
        context = make_context(schedule=scheduled)
        with capture_logs() as logs:
            outcome = await process(context, job)
        assert outcome.status == DeliveryStatus.DEAD
        assert scheduled.jobs == []  # not retried: no key will appear by retrying
    assert receiver.received == []  # nothing unsigned or wrongly signed was sent
    dead = Ledger(redis_client).dead_letters()
    assert [entry["reason"] for entry in dead] == [
        "subscription lavrov: the webhook secret does not decrypt with any key of "
        "TGWATCH_SECRETS_KEY",
        "subscription lavrov: the webhook secret is encrypted and TGWATCH_SECRETS_KEY is not set",
    ]
    [event] = [e for e in logs if e["event"] == "webhook_secret_unavailable"]
    assert event["subscription"] == "lavrov"
    shown = (
        json.dumps(logs, default=str)
        + json.dumps(dead)
        + json.dumps(
            Ledger(redis_client).attempts(job.target)  # type: ignore[arg-type]
        )
    )
    assert SECRET not in shown and "in-the-query" not in json.dumps(logs, default=str)

    # The key is fixed: the dead letters are redelivered and verify.
    secretbox.install(box(KEY_OLD))
    queue = deliveries_queue(redis_client)
    assert redeliver(Ledger(redis_client), queue) == 2
    context = make_context(schedule=Scheduled())
    statuses = [
        (await process(context, DeliveryJob.from_dict(queued.args[0]))).status
        for queued in queue.get_jobs()
    ]
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT]
    assert len(receiver.delivered) == 1


# --- the operator's rules file ----------------------------------------------------------------
RULES = f"""\
subscriptions:
  - id: lavrov
    query: 'лавров'
    notify:
      - webhook:
          url: "https://example.org/hook?token=in-the-query"
          secret: "{SECRET}"
"""


def test_import_encrypts_export_decrypts_and_a_reimport_changes_nothing(
    redis_client: redis.Redis,
) -> None:
    secretbox.install(box(KEY_OLD))
    ruleset = parse_rules(RULES)
    assert import_ruleset(redis_client, ruleset).added == ["lavrov"]
    assert SECRET not in everything(redis_client)
    version = RuleStore(redis_client).version()
    assert import_ruleset(redis_client, ruleset).unchanged == ["lavrov"]
    assert RuleStore(redis_client).version() == version
    exported = yaml.safe_load(export_yaml(redis_client))
    assert exported["subscriptions"][0]["notify"] == [yaml.safe_load(RULES)["subscriptions"][0]
                                                      ["notify"][0]]  # fmt: skip

    secretbox.install(box(KEY_WRONG))
    with pytest.raises(ValueError) as caught:
        export_yaml(redis_client)
    message = str(caught.value)
    assert message.startswith("subscription lavrov: ") and "TGWATCH_SECRETS_KEY" in message
    assert SECRET not in message and "example.org" not in message
    # Importing the file again repairs a record whose secret no key opens.
    assert import_ruleset(redis_client, ruleset).changed == ["lavrov"]
    assert box(KEY_WRONG).open(_stored_secrets(redis_client)[0]) == SECRET


def test_an_encrypted_looking_secret_is_refused_at_creation() -> None:
    with pytest.raises(ValueError, match="may not start with enc:v1:"):
        parse_rules(RULES.replace(SECRET, SEALED_PREFIX + "a" * 40))


# --- the command and the setting -----------------------------------------------------------------
def _env(redis_url: str, **values: str) -> dict[str, str]:
    return {"TGWATCH_REDIS_URL": redis_url, "TGWATCH_LOG_LEVEL": "warning", **values}


def test_secrets_rotate_command(redis_url: str, redis_client: redis.Redis) -> None:
    SubscriberStore(redis_client).create(_sub("plain", "https://example.org/a"))
    runner = CliRunner()
    result = runner.invoke(cli, ["secrets", "rotate"], env=_env(redis_url))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "tgwatch: TGWATCH_SECRETS_KEY is not set: there is no key to encrypt with"
    )
    env = _env(redis_url, TGWATCH_SECRETS_KEY=f"{KEY_NEW}, {KEY_OLD}")
    dry = runner.invoke(cli, ["secrets", "rotate", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert SECRET in _stored_secrets(redis_client)
    result = runner.invoke(cli, ["secrets", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "subscriptions: 1 checked, 0 without a webhook",
        "webhook secrets: 1 subscription(s) with plain secrets and 0 with secrets under an older "
        "key were encrypted under the first key; 0 already were",
        "rewritten: 1 subscription(s)",
    ]
    assert "checked 1/1 subscriptions" in result.stderr
    assert SECRET not in everything(redis_client)

    # A record no key opens is reported by id, the command fails, the others are done.
    secretbox.install(box(KEY_WRONG))
    SubscriberStore(redis_client).create(_sub("stranger", "https://example.org/b"))
    secretbox.install(PLAIN)
    SubscriberStore(redis_client).create(_sub("zz-plain", "https://example.org/c"))
    result = runner.invoke(cli, ["secrets", "rotate"], env=env)
    assert result.exit_code == 1
    assert (
        "  failed: stranger: the webhook secret does not decrypt with any key of "
        "TGWATCH_SECRETS_KEY"
    ) in result.stdout.splitlines()
    assert SECRET not in result.output and KEY_NEW not in result.output
    assert _stored_secrets(redis_client).count(SECRET) == 0
