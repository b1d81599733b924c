"""The shipped topic model: it loads from plain JSON, matches the taxonomy and the training data
it was made from, and meets its quality floor on the held-out posts."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from service.core.enrich import Enricher, build_enricher
from service.core.enrich.evaluation import evaluate
from service.core.enrich.topic_model import (
    MODEL_FORMAT,
    TOKEN_CACHE_SIZE,
    load_default_model,
    read_labelled,
    taxonomy_digest,
)
from service.core.enrich.topic_training import train_model
from service.core.enrich.topics import load_taxonomy
from service.core.text import tokenize

DATA = resources.files("service.data")


def test_the_shipped_model_is_plain_json_and_loads() -> None:
    text = DATA.joinpath("topic_model.json").read_text("utf-8")
    data = json.loads(text)  # plain JSON: nothing in it is executed when it is loaded
    assert data["format"] == MODEL_FORMAT
    model = load_default_model()
    taxonomy = load_taxonomy()
    assert model.topics == taxonomy.ids
    assert model.cue_inputs == taxonomy.ids
    assert model.weights.shape == (len(model.vocabulary), len(model.topics))
    assert model.trained_on == len(read_labelled(str(DATA.joinpath("eval/train.jsonl"))))


def test_the_shipped_model_was_trained_with_the_shipped_cues() -> None:
    """Fails when topics.yaml was edited without training the model again (see its header)."""
    assert load_default_model().taxonomy_digest == taxonomy_digest(load_taxonomy())


def test_the_shipped_model_is_reproducible_from_the_training_data() -> None:
    shipped = load_default_model()
    posts = read_labelled(str(DATA.joinpath("eval/train.jsonl")))
    taxonomy = load_taxonomy()
    retrained, skipped = train_model(posts, taxonomy.ids, taxonomy)
    assert skipped == []
    assert retrained.vocabulary == shipped.vocabulary
    np.testing.assert_allclose(retrained.idf, shipped.idf, rtol=1e-5)
    np.testing.assert_allclose(retrained.weights, shipped.weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(retrained.cue_weights, shipped.cue_weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(retrained.intercepts, shipped.intercepts, rtol=1e-4, atol=1e-6)


def test_build_enricher_loads_the_shipped_model_only_for_the_default_taxonomy(
    tmp_path: Path,
) -> None:
    assert build_enricher(topic_mode="cues").topics.model is None
    mine = tmp_path / "mine.yaml"
    mine.write_text("topics:\n  - id: cooking\n    cues: {en: [recipe]}\n", encoding="utf-8")
    own = build_enricher(taxonomy_path=mine)
    assert own.topics.model is None and own.topics.mode == "cues"


def test_prediction_uses_tokens_and_cue_scores_once_computed() -> None:
    model = load_default_model()
    taxonomy = load_taxonomy()
    from service.core.enrich.topics import CueScorer

    text = "Нацбанк підвищив облікову ставку, гривня зміцнилася"
    tokens = tokenize(text)
    cues = CueScorer(taxonomy).scores(tokens, "uk")
    scores = model.predict(text, tokens, cues)
    assert max(scores, key=scores.__getitem__) == "economy_finance"
    assert model.predict(None, tokens, cues) == scores
    # Without cue scores every topic's cue input counts as absent, and the evidence weakens.
    absent = model.predict(text, tokens, {})
    assert absent["economy_finance"] < scores["economy_finance"]


def test_the_token_cache_is_bounded() -> None:
    model = load_default_model()
    model._rows.clear()
    words = [f"word{i}" for i in range(TOKEN_CACHE_SIZE + 10)]  # Latin: no lemmatizer
    for word in words:
        model._token_rows(word)
    assert len(model._rows) <= TOKEN_CACHE_SIZE


def test_held_out_quality_floor(enricher: Enricher) -> None:
    """A floor under the figures in docs/enrichment.md: a change that costs quality fails here."""
    posts = read_labelled(str(DATA.joinpath("eval/heldout.jsonl")))
    langs = [enricher.detect_language(post.text) for post in posts]
    predicted = [
        frozenset(t.id for t in enricher.topics.classify(post.text, lang))
        for post, lang in zip(posts, langs, strict=True)
    ]
    report = evaluate(
        enricher.topics.topic_ids,
        [frozenset(p.topics) for p in posts],
        predicted,
        [p.lang for p in posts],
        langs,
    )
    assert report.macro_f1 >= 0.88
    assert min(topic.f1 for topic in report.topics) >= 0.80
    assert {lang.lang for lang in report.languages} == {"ru", "uk", "en", "es", "fr", "de"}
    assert min(lang.labels.f1 for lang in report.languages) >= 0.85
    assert report.no_topic_correct / report.no_topic_posts >= 0.9
    assert report.lang_accuracy >= 0.98


@pytest.mark.parametrize("folds", [2])
def test_cross_validation_predicts_every_post_from_other_folds(folds: int) -> None:
    from service.core.enrich.topic_model import LabelledPost
    from service.core.enrich.topic_training import cross_validate, cross_validation_folds

    fold_of = cross_validation_folds(10, folds)
    assert sorted(fold_of) == [0] * 5 + [1] * 5
    assert cross_validation_folds(10, folds) == fold_of  # seeded: the same folds every run
    with pytest.raises(ValueError, match="folds"):
        cross_validation_folds(3, 4)
    posts = [
        LabelledPost(text, topics, "en")
        for text, topics in [
            ("Bitcoin and ether rallied", ("crypto",)),
            ("Bitcoin miners sold coins", ("crypto",)),
            ("A stablecoin depegged, bitcoin fell", ("crypto",)),
            ("Crypto exchange hacked, bitcoin stolen", ("crypto",)),
            ("The ambassador met the minister", ("diplomacy",)),
            ("Talks between the foreign ministers", ("diplomacy",)),
            ("The embassy closed, the ambassador left", ("diplomacy",)),
            ("Summit talks with the minister", ("diplomacy",)),
            ("A sunny day at the beach", ()),
            ("The match ended in a draw", ()),
        ]
    ]
    topic_ids, predicted = cross_validate(posts, load_taxonomy(), folds)
    assert set(topic_ids) == set(load_taxonomy().ids)
    assert len(predicted) == len(posts)
    assert "crypto" in predicted[0] and "diplomacy" in predicted[4]
