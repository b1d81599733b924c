"""Topics: the default taxonomy, multi-label and no-label posts, user taxonomies, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.enrich.evaluation import evaluate
from service.core.enrich.topic_model import (
    LabelledDataError,
    LabelledPost,
    ModelFileError,
    TopicModel,
    read_labelled,
)
from service.core.enrich.topic_training import train_model
from service.core.enrich.topics import (
    TaxonomyError,
    TopicClassifier,
    load_taxonomy,
    parse_taxonomy,
)

DEFAULT_IDS = {
    "diplomacy",
    "conflict_military",
    "economy_finance",
    "energy_nuclear",
    "space_science",
    "human_rights_law",
    "crypto",
    "tech",
}


@pytest.fixture(scope="module")
def classifier() -> TopicClassifier:
    return TopicClassifier(load_taxonomy())


def topics_of(classifier: TopicClassifier, text: str, lang: str | None) -> set[str]:
    return {topic.id for topic in classifier.classify(text, lang)}


def test_default_taxonomy_has_exactly_the_agreed_topics() -> None:
    taxonomy = load_taxonomy()
    assert set(taxonomy.ids) == DEFAULT_IDS
    for topic in taxonomy.topics:
        assert topic.name and topic.description
        languages = set(topic.cues) | set(topic.strong)
        assert {"ru", "uk", "en", "es", "fr", "de"} <= languages, topic.id


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Лавров провёл переговоры с послом Китая на полях Генассамблеи ООН.", "ru", "diplomacy"),
        ("Силы ПВО сбили беспилотники, обстрел продолжался всю ночь.", "ru", "conflict_military"),
        ("The central bank raised interest rates as inflation hit 9%.", "en", "economy_finance"),
        ("La central nuclear quedó sin electricidad, informó el OIEA.", "es", "energy_nuclear"),
        ("La fusée a placé deux satellites en orbite depuis Kourou.", "fr", "space_science"),
        (
            "Суд приговорил журналиста к шести годам, правозащитники возмущены.",
            "ru",
            "human_rights_law",
        ),
        ("Bitcoin hit a record as spot ETFs drew inflows; Ethereum followed.", "en", "crypto"),
        ("Le logiciel d'intelligence artificielle a été victime d'une cyberattaque.", "fr", "tech"),
    ],
)
def test_each_topic_is_found(
    classifier: TopicClassifier, text: str, lang: str, expected: str
) -> None:
    assert expected in topics_of(classifier, text, lang)


def test_a_post_can_have_several_topics(classifier: TopicClassifier) -> None:
    text = "Курс биткоина упал после решения ФРС сохранить ставку; инфляция в США ускорилась."
    assert {"crypto", "economy_finance"} <= topics_of(classifier, text, "ru")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Сварите суп: морковь, картофель, лавровый лист, варить 40 минут.", "ru"),
        ("Mix the flour with olive oil and bake the apple pie for 40 minutes.", "en"),
        ("Sofríe el pollo, añade el tomate, el azafrán y el arroz.", "es"),
        ("Servez le café frappé avec une salade d'avocat et du vin blanc sec.", "fr"),
        ("Manchester City beat Arsenal 2-1 with a late goal from Haaland.", "en"),
    ],
)
def test_off_topic_posts_get_no_topic(classifier: TopicClassifier, text: str, lang: str) -> None:
    assert topics_of(classifier, text, lang) == set()


def test_russian_cues_match_any_inflection(classifier: TopicClassifier) -> None:
    forms = ["санкции", "санкций", "санкциями", "санкциях"]
    scores = [classifier.scores(f"Новые {form} против банков", "ru") for form in forms]
    assert len({round(score["economy_finance"], 6) for score in scores}) == 1
    assert scores[0]["economy_finance"] > 0


def test_cues_of_the_posts_language_only(classifier: TopicClassifier) -> None:
    # "SEC" is an English crypto cue; French "sec" (dry) must not count for crypto.
    english = classifier.scores("The SEC and a crypto wallet", "en")["crypto"]
    french = classifier.scores("Un vin sec et un portefeuille", "fr")["crypto"]
    assert english > french


def test_scores_are_in_unit_range_and_sorted(classifier: TopicClassifier) -> None:
    result = classifier.classify("Oil prices and nuclear power plants amid the war", "en")
    assert all(0 < topic.score < 1 for topic in result)
    assert [t.score for t in result] == sorted((t.score for t in result), reverse=True)


def write_taxonomy(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_user_taxonomy_replaces_the_default(tmp_path: Path) -> None:
    path = write_taxonomy(
        tmp_path / "mine.yaml",
        "threshold: 0.4\ntopics:\n  - id: cooking\n    name: Cooking\n"
        "    cues: {ru: [рецепт, суп], en: [recipe, soup*]}\n",
    )
    taxonomy = load_taxonomy(path)
    assert taxonomy.ids == ("cooking",)
    classifier = TopicClassifier(taxonomy)
    assert topics_of(classifier, "Рецепт супа из тыквы", "ru") == {"cooking"}
    assert topics_of(classifier, "Soups: a recipe for winter", "en") == {"cooking"}
    assert topics_of(classifier, "Переговоры в Женеве", "ru") == set()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("topics: []", "non-empty list"),
        ("topics:\n  - id: a\n    cues: {ru: [x]}\n  - id: a\n    cues: {ru: [y]}", "duplicate"),
        ("topics:\n  - id: a\n    cues: {russian: [x]}", "not a language code"),
        ("topics:\n  - id: a\n    cues: {en: [x]}\n    colour: red", "unknown key"),
        ("topics:\n  - id: a", "has no cues"),
        ("topics:\n  - id: a\n    cues: {en: ['two words*']}", "prefix cue"),
        ("threshold: 2\ntopics:\n  - id: a\n    cues: {en: [x]}", "threshold"),
        ("topics: [: bad", "not valid YAML"),
    ],
)
def test_bad_taxonomies_give_clear_errors(tmp_path: Path, body: str, message: str) -> None:
    path = write_taxonomy(tmp_path / "bad.yaml", body)
    with pytest.raises(TaxonomyError, match=message) as error:
        load_taxonomy(path)
    assert "bad.yaml" in str(error.value)


def test_missing_taxonomy_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot read"):
        load_taxonomy(tmp_path / "absent.yaml")


def small_labelled() -> list[LabelledPost]:
    fruit = ["apples and pears", "ripe apples", "pears in syrup", "apple harvest", "pear trees"]
    cars = ["fast cars on the road", "electric cars", "car engines", "the road and the car"]
    both = ["apples in the car", "a car full of pears"]
    other = ["the weather is mild", "a quiet evening", "music in the park"]
    return (
        [LabelledPost(text, ("fruit",)) for text in fruit]
        + [LabelledPost(text, ("cars",)) for text in cars]
        + [LabelledPost(text, ("fruit", "cars")) for text in both]
        + [LabelledPost(text, ()) for text in other]
    )


def test_training_saves_a_model_that_predicts(tmp_path: Path) -> None:
    model, skipped = train_model([*small_labelled(), LabelledPost("one lonely boat", ("boats",))])
    assert skipped == ["boats"]
    assert set(model.topics) == {"fruit", "cars"}
    path = tmp_path / "model.json"
    model.save(path)
    loaded = TopicModel.load(path)
    scores = loaded.predict("a basket of apples")
    assert scores["fruit"] > 0.5 > scores["cars"]
    for topic, score in model.predict("a basket of apples").items():
        assert scores[topic] == pytest.approx(score, abs=1e-5)  # weights saved to 6 digits


def test_model_and_blend_modes(tmp_path: Path) -> None:
    model, _ = train_model(small_labelled())
    taxonomy = parse_taxonomy({"topics": [{"id": "fruit", "cues": {"en": ["apple*"]}}]})
    only_model = TopicClassifier(taxonomy, model, mode="model")
    assert {t.id for t in only_model.classify("electric cars on the road", "en")} == {"cars"}
    blend = TopicClassifier(taxonomy, model)
    assert blend.mode == "blend"
    assert "fruit" in {t.id for t in blend.classify("apples and pears", "en")}
    with pytest.raises(ValueError, match="needs a trained model"):
        TopicClassifier(taxonomy, None, mode="model")


def test_a_model_trained_with_cues_weighs_them_and_keeps_the_other_topics() -> None:
    taxonomy = parse_taxonomy(
        {
            "topics": [
                {"id": "fruit", "strong": {"en": ["apple*", "pear*"]}},
                {"id": "boats", "strong": {"en": ["boat*"]}},
            ]
        }
    )
    model, _ = train_model(small_labelled(), ["fruit", "cars"], taxonomy)
    assert model.cue_inputs == ("fruit", "boats")
    blend = TopicClassifier(taxonomy, model)
    # A fruit word no labelled post has: only the cue knows it, and the model trusts the cue.
    assert {t.id for t in blend.classify("pearmain for dessert", "en")} == {"fruit"}
    # "boats" was never labelled: blend falls back to its cue score; model mode drops it.
    assert "boats" in {t.id for t in blend.classify("two boats", "en")}
    assert "boats" not in TopicClassifier(taxonomy, model, mode="model").scores("two boats")
    with pytest.raises(ValueError, match="cue_scores"):
        model.predict("two boats")


def test_loading_something_else_than_a_model_fails(tmp_path: Path) -> None:
    path = tmp_path / "not-a-model.json"
    path.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    with pytest.raises(ModelFileError, match="not a tgwatch topic model"):
        TopicModel.load(path)
    pickled = tmp_path / "old.joblib"
    pickled.write_bytes(b"\x80\x04\x95\x00\x00")  # a pickle: refused, never unpickled
    with pytest.raises(ModelFileError, match=r"old.joblib: cannot read"):
        TopicModel.load(pickled)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": "tgwatch-topics/2", "topics": ["a"]}), "utf-8")
    with pytest.raises(ModelFileError, match="malformed"):
        TopicModel.load(broken)
    with pytest.raises(ModelFileError, match="cannot read"):
        TopicModel.load(tmp_path / "absent.json")


def test_labelled_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"text": "ok", "topics": []}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(LabelledDataError, match=r"labelled.jsonl:2"):
        read_labelled(path)
    path.write_text(json.dumps({"text": "x", "topics": ["a"], "lang": "en"}) + "\n", "utf-8")
    assert read_labelled(path) == [LabelledPost("x", ("a",), "en")]


def test_evaluation_figures() -> None:
    gold = [frozenset({"a"}), frozenset({"a", "b"}), frozenset()]
    predicted = [frozenset({"a"}), frozenset({"b"}), frozenset({"a"})]
    report = evaluate(["a", "b"], gold, predicted, ["en", "ru", "fr"], ["en", "ru", "es"])
    first = report.topics[0]
    assert (first.true_positives, first.false_positives, first.false_negatives) == (1, 1, 1)
    assert first.precision == first.recall == first.f1 == 0.5
    assert report.topics[1].f1 == 1.0
    assert report.no_topic_correct == 0
    assert report.lang_correct == 2
    by_lang = {lang.lang: lang for lang in report.languages}
    assert set(by_lang) == {"en", "ru", "fr"}
    assert by_lang["en"].labels.f1 == 1.0 and by_lang["en"].posts == 1
    # ru: gold {a, b}, predicted {b}: one label of two found, nothing wrong predicted.
    assert (by_lang["ru"].labels.precision, by_lang["ru"].labels.recall) == (1.0, 0.5)
    assert by_lang["ru"].macro_f1 == 0.5  # a: 0.0, b: 1.0
    # fr: no gold label, one wrong prediction.
    assert by_lang["fr"].labels.false_positives == 1 and by_lang["fr"].labels.support == 0
