"""`tgwatch subscriptions import|export`: idempotent import with a summary, and a round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner

from service.commands.subscriptions import subscriptions
from service.core.rules import RulesError, parse_rules
from service.store.rules import RuleStore
from service.store.subscribers import (
    StoredSubscription,
    SubscriberSettings,
    SubscriberStore,
)
from service.subscriptions_file import export_yaml, import_ruleset

RULES = """\
entities:
  - id: lavrov
    name: Sergey Lavrov
    aliases: ["Sergey Lavrov", "Лавров"]
subscriptions:
  - id: lavrov
    query: 'entity:lavrov'
    notify:
      - telegram: -1001234567890
      - webhook:
          url: "https://example.org/hook"
          secret: "whsec_c3Vic2NyaXB0aW9ucy1maWxlLXRlc3Qtc2VjcmV0"
  - id: ceasefire
    name: Ceasefire, not rumours
    query: '(ceasefire OR перемирие) AND NOT (rumor OR слухи)'
    paused: true
"""


def _by_id(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "subscriptions": sorted(document["subscriptions"], key=lambda s: s["id"])}


def test_import_twice_is_idempotent(redis_client: redis.Redis) -> None:
    ruleset = parse_rules(RULES)
    first = import_ruleset(redis_client, ruleset)
    assert sorted(first.added) == ["ceasefire", "lavrov"]
    assert first.entities["added"] == ["lavrov"]
    version = RuleStore(redis_client).version()
    second = import_ruleset(redis_client, ruleset)
    assert (second.added, second.changed, second.removed) == ([], [], [])
    assert sorted(second.unchanged) == ["ceasefire", "lavrov"]
    assert second.entities["unchanged"] == ["lavrov"]
    assert RuleStore(redis_client).version() == version  # nothing written, nothing recompiled
    assert second.lines()[0] == "subscriptions: 0 added, 0 changed, 2 unchanged, 0 removed"

    _, stored = RuleStore(redis_client).load()
    assert {s.id: s.paused for s in stored.subscriptions} == {"ceasefire": True, "lavrov": False}
    lavrov = next(s for s in stored.subscriptions if s.id == "lavrov")
    assert lavrov.notify[0] == {"telegram": -1001234567890}


def test_change_and_prune(redis_client: redis.Redis) -> None:
    import_ruleset(redis_client, parse_rules(RULES))
    store = SubscriberStore(redis_client)
    store.create(StoredSubscription("s1", "truce", targets=({"telegram": 5},), owner="tg:5"))
    store.create(StoredSubscription("s2", "truce"))  # the operator's own
    changed = RULES.replace("paused: true", "paused: false")
    summary = import_ruleset(redis_client, parse_rules(changed))
    assert summary.changed == ["ceasefire"] and summary.removed == []
    summary = import_ruleset(redis_client, parse_rules(changed), prune=True)
    assert summary.removed == ["s2"] and store.get("s2") is None
    assert store.get("s1") is not None  # a chat's watch is never pruned by the operator's file


def test_export_round_trips(redis_client: redis.Redis) -> None:
    import_ruleset(redis_client, parse_rules(RULES))
    # The chat's digest is merged into what delivery gets, never into the exported file.
    assert (
        SubscriberStore(redis_client).set_settings(-1001234567890, SubscriberSettings(digest="1h"))
        == 1
    )
    _, stored = RuleStore(redis_client).load()
    lavrov = next(s for s in stored.subscriptions if s.id == "lavrov")
    assert lavrov.notify[0]["digest"] == "1h"
    text = export_yaml(redis_client)
    assert _by_id(yaml.safe_load(text)) == _by_id(yaml.safe_load(RULES))
    again = import_ruleset(redis_client, parse_rules(text))
    assert sorted(again.unchanged) == ["ceasefire", "lavrov"]


def test_invalid_target_is_refused(redis_client: redis.Redis) -> None:
    bad = RULES.replace('secret: "whsec_c3Vic2NyaXB0aW9ucy1maWxlLXRlc3Qtc2VjcmV0"', 'secret: ""')
    with pytest.raises(RulesError, match='line 10: a target of subscription "lavrov"'):
        parse_rules(bad)
    with pytest.raises(ValueError, match='subscription "lavrov": target 2'):
        import_ruleset(redis_client, parse_rules(bad, targets=None))
    assert RuleStore(redis_client).records() == []


def test_cli_import_and_export(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(subscriptions, ["import", str(rules)])
    assert result.exit_code == 0, result.output
    assert "subscriptions: 2 added, 0 changed, 0 unchanged, 0 removed" in result.output
    result = runner.invoke(subscriptions, ["import", str(rules)])
    assert "0 added, 0 changed, 2 unchanged" in result.output
    out = tmp_path / "out.yaml"
    result = runner.invoke(subscriptions, ["export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _by_id(yaml.safe_load(out.read_text(encoding="utf-8"))) == _by_id(yaml.safe_load(RULES))
    broken = tmp_path / "broken.yaml"
    broken.write_text("subscriptions:\n  - id: x\n    query: '(a'\n    colour: red\n")
    result = runner.invoke(subscriptions, ["import", str(broken)])
    assert result.exit_code == 1 and "broken.yaml:4" in result.output


def test_a_large_import_is_one_version_bump_and_a_short_summary(
    redis_client: redis.Redis,
) -> None:
    subs = "\n".join(
        f"  - id: s{n}\n    query: 'word{n} OR слово{n}'\n    notify: [{{telegram: {n}}}]"
        for n in range(2000)
    )
    ruleset = parse_rules(f"subscriptions:\n{subs}\n")
    store = RuleStore(redis_client)
    before = store.version()
    summary = import_ruleset(redis_client, ruleset)
    assert store.version() == before + 1  # one transaction: workers compile it once
    assert len(summary.added) == 2000
    lines = summary.lines()
    assert lines[0] == "subscriptions: 2000 added, 0 changed, 0 unchanged, 0 removed"
    assert lines[-1] == "  added: ... and 1950 more"
    assert len(lines) == 2 + 50 + 1
    # Again: nothing changes, no bump.
    assert len(import_ruleset(redis_client, ruleset).unchanged) == 2000
    assert store.version() == before + 1
