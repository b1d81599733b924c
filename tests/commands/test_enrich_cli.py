"""`tgwatch classify`, `tgwatch topics train` and `tgwatch eval topics` through click."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from service.commands.enrich import classify, eval_cmd, topics

RECORD_KEYS = {"update_id", "post", "lang", "topics", "entities"}
ENTITY_TYPES = {"PER", "ORG", "LOC", "hashtag", "cashtag", "mention", "url"}


def test_classify_jsonl_prints_one_object_per_post_version(fixtures_dir: Path) -> None:
    sample = fixtures_dir / "mfa_russia_sample.json"
    result = CliRunner().invoke(classify, ["--format", "jsonl", "--no-ner", str(sample)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    updates = json.loads(sample.read_text(encoding="utf-8"))
    assert 0 < len(records) <= len(updates)
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["post"].startswith("mfa_russia/")
        assert isinstance(record["update_id"], int)
        for topic in record["topics"]:
            assert set(topic) == {"id", "score"} and 0 < topic["score"] <= 1
        for entity in record["entities"]:
            assert entity["type"] in ENTITY_TYPES
            assert {"type", "text", "canonical", "start", "end"} <= set(entity)
    langs = {record["lang"] for record in records if record["lang"]}
    assert "en" in langs
    assert any(record["topics"] for record in records)
    assert any(e["type"] == "mention" for record in records for e in record["entities"])


def test_classify_reports_watched_entities_from_a_rules_file(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "entities:\n  - id: lavrov\n    name: Sergey Lavrov\n"
        "    aliases: [Sergey Lavrov, Lavrov, Лавров]\nsubscriptions: []\n",
        encoding="utf-8",
    )
    sample = fixtures_dir / "mfa_russia_sample.json"
    args = ["--format", "jsonl", "--no-ner", "--rules", str(rules), str(sample)]
    result = CliRunner().invoke(classify, args)
    assert result.exit_code == 0, result.output
    watched = [
        entity
        for line in result.output.splitlines()
        for entity in json.loads(line)["entities"]
        if "id" in entity
    ]
    assert watched and {(e["id"], e["canonical"]) for e in watched} == {("lavrov", "Sergey Lavrov")}


def test_classify_table(fixtures_dir: Path) -> None:
    sample = fixtures_dir / "mfa_russia_sample.json"
    result = CliRunner().invoke(classify, ["--no-ner", str(sample)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:3] == ["post", "lang", "topics"]
    assert "mfa_russia/" in result.output


def write_labelled(path: Path) -> Path:
    rows = [
        ("Переговоры министров иностранных дел прошли в Женеве", "ru", ["diplomacy"]),
        ("Посол вручил верительные грамоты президенту", "ru", ["diplomacy"]),
        ("The ambassador met the foreign minister for talks", "en", ["diplomacy"]),
        ("Bitcoin and Ethereum rallied on the crypto exchange", "en", ["crypto"]),
        ("Курс биткоина вырос, криптовалюта дорожает", "ru", ["crypto"]),
        ("Le bitcoin dépasse un nouveau record", "fr", ["crypto"]),
        ("Receta de tortilla con patatas y cebolla", "es", []),
        ("Рецепт борща со сметаной", "ru", []),
    ]
    path.write_text(
        "".join(
            json.dumps({"text": t, "lang": lang, "topics": labels}, ensure_ascii=False) + "\n"
            for t, lang, labels in rows
        ),
        encoding="utf-8",
    )
    return path


def test_eval_topics_prints_figures(tmp_path: Path) -> None:
    labelled = write_labelled(tmp_path / "labelled.jsonl")
    result = CliRunner().invoke(eval_cmd, ["topics", str(labelled)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("mode: blend; 8 posts")  # the shipped model, by default
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert {"diplomacy", "crypto", "micro"} <= set(lines)
    assert lines["topic"][1:] == ["support", "precision", "recall", "f1"]
    assert lines["crypto"][1] == "3"
    assert lines["lang"][1:] == ["posts", "labels", "precision", "recall", "f1", "macro", "f1"]
    assert lines["ru"][1:3] == ["4", "3"]  # 4 Russian posts, 3 topic labels among them
    assert {"en", "es", "fr"} <= set(lines)
    assert "language accuracy:" in result.output


def test_eval_topics_cross_validates(tmp_path: Path) -> None:
    labelled = write_labelled(tmp_path / "labelled.jsonl")
    result = CliRunner().invoke(eval_cmd, ["topics", str(labelled), "--cv", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("cross-validation: 2 folds of 8 posts")
    assert "macro f1" in result.output
    refused = CliRunner().invoke(eval_cmd, ["topics", str(labelled), "--cv", "2", "--mode", "cues"])
    assert refused.exit_code != 0 and "--cv" in refused.output
    too_many = CliRunner().invoke(eval_cmd, ["topics", str(labelled), "--cv", "9"])
    assert too_many.exit_code != 0 and "folds" in too_many.output


def test_train_then_eval_with_the_model(tmp_path: Path) -> None:
    labelled = write_labelled(tmp_path / "labelled.jsonl")
    model = tmp_path / "models" / "topics.json"
    runner = CliRunner()
    trained = runner.invoke(topics, ["train", str(labelled), "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert json.loads(model.read_text("utf-8"))["format"] == "tgwatch-topics/2"
    assert "trained 2 topics on 8 posts" in trained.output
    evaluated = runner.invoke(
        eval_cmd, ["topics", str(labelled), "--model", str(model), "--mode", "model"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert evaluated.output.startswith("mode: model")
    assert "crypto" in evaluated.output


def test_train_without_cues(tmp_path: Path) -> None:
    labelled = write_labelled(tmp_path / "labelled.jsonl")
    model = tmp_path / "words.json"
    trained = CliRunner().invoke(topics, ["train", str(labelled), "--out", str(model), "--no-cues"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(model.read_text("utf-8"))["cue_inputs"] == []


def test_train_rejects_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    result = CliRunner().invoke(topics, ["train", str(bad)])
    assert result.exit_code != 0
    assert "bad.jsonl:1" in result.output


def test_a_model_file_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    labelled = write_labelled(tmp_path / "labelled.jsonl")
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(eval_cmd, ["topics", str(labelled), "--model", str(bogus)])
    assert result.exit_code != 0
    assert "bogus.json: not a tgwatch topic model" in result.output
