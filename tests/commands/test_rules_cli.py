"""`tgwatch backtest` and `tgwatch rules check|explain|load` through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from service.commands.rules import backtest, rules
from service.store.rules import RuleStore

RULES = """\
entities:
  - id: lavrov
    name: Sergey Lavrov
    aliases: ["Sergey Lavrov", "Лавров"]
subscriptions:
  - id: lavrov
    query: entity:lavrov
  - id: unga
    query: '#UNGA79 OR "General Assembly"'
  - id: china
    query: China -Russia
"""
JSONL_KEYS = [
    "update_id",
    "post",
    "subscription",
    "alert",
    "suppressed",
    "duplicate_of",
    "highlights",
]


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_backtest_jsonl_on_the_sample(rules_file: Path, fixtures_dir: Path) -> None:
    sample = fixtures_dir / "mfa_russia_sample.json"
    result = CliRunner().invoke(
        backtest, ["--rules", str(rules_file), "--format", "jsonl", str(sample)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records
    for record in records:
        assert list(record) == JSONL_KEYS
        assert record["alert"] is (record["suppressed"] is None)
        assert record["suppressed"] in (None, "edit", "duplicate")
        assert record["post"].startswith("mfa_russia/")
        for highlight in record["highlights"]:
            assert list(highlight) == ["start", "end", "text"]
            assert highlight["end"] > highlight["start"]
    subscriptions = {record["subscription"] for record in records}
    assert subscriptions == {"lavrov", "unga", "china"}
    # Post 1008 is edited to add #UNGA79: the edit matched before, so it is suppressed.
    edits = [r for r in records if r["post"] == "mfa_russia/1008" and r["suppressed"] == "edit"]
    assert {r["subscription"] for r in edits} == {"lavrov", "unga"}
    lavrov = next(r for r in records if r["subscription"] == "lavrov")
    assert any("Lavrov" in h["text"] for h in lavrov["highlights"])


def test_backtest_table_summarizes_per_subscription(rules_file: Path, fixtures_dir: Path) -> None:
    sample = fixtures_dir / "mfa_russia_sample.json"
    result = CliRunner().invoke(backtest, ["--rules", str(rules_file), str(sample)])
    assert result.exit_code == 0, result.output
    assert "https://t.me/mfa_russia/1008" in result.output
    assert "[Sergey Lavrov]" in result.output
    summary = result.output.split("subscription  matches  alerts")[1].split()
    assert summary[0] == "lavrov"
    assert int(summary[1]) >= int(summary[2]) > 0


def test_backtest_with_a_bad_rules_file_explains(tmp_path: Path, fixtures_dir: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("subscriptions:\n  - id: a\n    query: '(a'\n", encoding="utf-8")
    sample = fixtures_dir / "mfa_russia_sample.json"
    result = CliRunner().invoke(backtest, ["--rules", str(path), str(sample)])
    assert result.exit_code == 1
    assert f'{path}:3: subscription "a": query error: unbalanced "(" at 0' in result.stderr


def test_check_ok(rules_file: Path) -> None:
    result = CliRunner().invoke(rules, ["check", str(rules_file)])
    assert result.exit_code == 0
    assert "3 subscriptions (0 paused), 1 entities" in result.output


def test_check_reports_every_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "subscriptions:\n  - id: a\n    query: 'x AND'\n    colour: red\n  - id: a\n    query: y\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:3: ")
    assert lines[1].startswith(f'{path}:4: unknown key "colour"')
    assert lines[2] == f'{path}:5: duplicate subscription id "a" (first at line 2)'


def test_explain_shows_tree_lemmas_and_index_keys() -> None:
    result = CliRunner().invoke(rules, ["explain", "Лаврову AND NOT (слухи OR =Слухам) санкц*"])
    assert result.exit_code == 0, result.output
    assert "lemma 'лавров'" in result.output
    assert "word (exact) 'слухам' → exactly this form" in result.output
    assert "prefix 'санкц'*" in result.output
    assert "index: evaluated only for posts containing one of: лавров" in result.output


def test_explain_pure_negation_is_evaluated_for_every_post() -> None:
    result = CliRunner().invoke(rules, ["explain", "NOT rumor"])
    assert "evaluated for every post" in result.output


def test_explain_error_points_at_the_position() -> None:
    result = CliRunner().invoke(rules, ["explain", "a AND (b OR c"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1] == "      ^"
    assert 'error: unbalanced "(" at 6' in result.stderr


def test_load_stores_the_rules_in_redis(
    rules_file: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    result = CliRunner().invoke(rules, ["load", str(rules_file)])
    assert result.exit_code == 0, result.output
    version, ruleset = RuleStore(redis_client).load()
    assert f"loaded 3 subscriptions and 1 entities (rules version {version})" in result.output
    assert "subscriptions: 3 added" in result.output
    assert [sub.id for sub in ruleset.subscriptions] == ["china", "lavrov", "unga"]


def test_load_replaces_the_rule_set_but_keeps_what_the_bot_set(
    rules_file: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store.subscribers import StoredSubscription, SubscriberStore

    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    store = SubscriberStore(redis_client)
    store.put(StoredSubscription("unga", "#UNGA78", owner="tg:42", mode="digest"))
    store.put(StoredSubscription("chat-own", "whatever", owner="tg:42"))
    store.put(StoredSubscription("stale", "whatever"))  # the operator's, not in the file
    result = CliRunner().invoke(rules, ["load", str(rules_file)])
    assert result.exit_code == 0, result.output
    kept = {sub.id: sub for sub in store.all()}
    assert set(kept) == {"china", "lavrov", "unga", "chat-own"}  # a chat's own watch stays
    assert kept["unga"].query != "#UNGA78"
    assert kept["unga"].owner == "tg:42" and kept["unga"].mode == "digest"
    assert "removed: stale" in result.output
