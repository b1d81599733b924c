"""Train, save and load a topic classifier from labelled posts (scikit-learn, one-vs-rest).

Labelled posts are JSON lines ``{"text": ..., "topics": [...], "lang": optional}``. The model is
TF-IDF over word uni/bigrams of lemmas (Russian words by lemma, like the cues) plus character
n-grams within words (robust to inflection in languages without a lemmatizer), and one logistic
regression per topic. It is saved with joblib to one file, with the topic list and a format tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.core.morphology import lemma
from service.core.text import is_cyrillic, tokenize

MODEL_FORMAT = "tgwatch-topics/1"
# A topic needs this many positive examples to be learned; fewer are reported and skipped.
MIN_POSITIVES = 2


class LabelledDataError(ValueError):
    """A labelled file is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class LabelledPost:
    text: str
    topics: tuple[str, ...]
    lang: str | None = None


def read_labelled(path: Path | str) -> list[LabelledPost]:
    """Read labelled posts from JSON lines, with clear errors naming the line."""
    posts: list[LabelledPost] = []
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise LabelledDataError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledDataError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise LabelledDataError(f"{where}: expected an object with a 'text' string")
        topics = item.get("topics", [])
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise LabelledDataError(f"{where}: 'topics' must be a list of topic ids")
        lang = item.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise LabelledDataError(f"{where}: 'lang' must be a language code or absent")
        posts.append(LabelledPost(item["text"], tuple(dict.fromkeys(topics)), lang))
    if not posts:
        raise LabelledDataError(f"{path}: no labelled posts")
    return posts


def lemmatized(text: str) -> str:
    """The text as space-separated lemmas (Cyrillic) and normalized words (others)."""
    return " ".join(
        lemma(token.norm) if is_cyrillic(token.norm) else token.norm for token in tokenize(text)
    )


class TopicModel:
    """A trained classifier: ``predict(text)`` gives a probability per topic it learned."""

    def __init__(self, pipeline: Any, topics: Sequence[str]) -> None:
        self.pipeline = pipeline
        self.topics = tuple(topics)

    def predict(self, text: str) -> dict[str, float]:
        probabilities = self.pipeline.predict_proba([lemmatized(text)])[0]
        return {topic: float(p) for topic, p in zip(self.topics, probabilities, strict=True)}

    def save(self, path: Path | str) -> None:
        import joblib

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": MODEL_FORMAT, "topics": list(self.topics), "pipeline": self.pipeline}
        joblib.dump(payload, target)

    @classmethod
    def load(cls, path: Path | str) -> TopicModel:
        """Load a model saved by ``save``. Only load files you trust: joblib files are pickles."""
        import joblib

        try:
            payload = joblib.load(Path(path))
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: cannot load the topic model ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a tgwatch topic model ({MODEL_FORMAT})")
        return cls(payload["pipeline"], payload["topics"])


def train_model(
    posts: Iterable[LabelledPost], topics: Sequence[str] | None = None
) -> tuple[TopicModel, list[str]]:
    """Train on labelled posts; returns the model and the topics skipped for too few examples.

    ``topics`` limits (and orders) the topics learned; by default every topic seen is.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import FeatureUnion, Pipeline

    examples = list(posts)
    seen = topics if topics is not None else sorted({t for p in examples for t in p.topics})
    learnable: list[str] = []
    skipped: list[str] = []
    for topic in seen:
        positives = sum(1 for post in examples if topic in post.topics)
        if MIN_POSITIVES <= positives < len(examples):
            learnable.append(topic)
        else:
            skipped.append(topic)
    if not learnable:
        raise ValueError(f"no topic has at least {MIN_POSITIVES} positive and one negative example")
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2
                ),
            ),
        ]
    )
    classifier = OneVsRestClassifier(
        LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
    )
    pipeline = Pipeline([("features", features), ("classifier", classifier)])
    texts = [lemmatized(post.text) for post in examples]
    labels = [[1 if topic in post.topics else 0 for topic in learnable] for post in examples]
    pipeline.fit(texts, labels)
    return TopicModel(pipeline, learnable), skipped
