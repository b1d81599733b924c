"""Train a topic model from labelled posts (scikit-learn), and cross-validate that training.

Training is deterministic (liblinear, features in sorted order): the same labelled file, taxonomy
and code give the same model, so the shipped model is reproducible with
``tgwatch topics train service/data/eval/train.jsonl --out service/data/topic_model.json``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from service.core.enrich.topic_model import (
    LabelledPost,
    TopicModel,
    taxonomy_digest,
    text_features,
)
from service.core.text import tokenize

if TYPE_CHECKING:
    from service.core.enrich.topics import Taxonomy

# A topic needs this many positive examples to be learned; fewer are reported and skipped.
MIN_POSITIVES = 2
# A word feature must occur in this many training posts: rarer ones are mostly names and typos
# that would only be memorized (and would make the model file several times larger).
MIN_DOCUMENT_FREQUENCY = 2
# Inverse regularization strength of each topic's logistic regression; 3-30 scored within 0.01
# macro-F1 of each other in 5-fold cross-validation on the shipped training set.
REGULARIZATION_C = 10.0
# The cue scores enter the regression scaled by this, next to L2-normalized word features; 1-4
# gave the same cross-validated F1, 2 lets the cues weigh as much as a post's strongest words.
CUE_SCALE = 2.0
CV_SEED = 0


def _cue_matrix(
    posts: Sequence[LabelledPost], taxonomy: Taxonomy | None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    if taxonomy is None:
        return np.zeros((len(posts), 0))
    from service.core.enrich.topics import CueScorer

    scorer = CueScorer(taxonomy)
    rows = []
    for post in posts:
        scores = scorer.scores(tokenize(post.text), post.lang)
        rows.append([scores.get(topic_id, 0.0) for topic_id in taxonomy.ids])
    return np.array(rows, dtype=np.float64).reshape(len(posts), len(taxonomy.ids))


def _learnable(
    posts: Sequence[LabelledPost], topics: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    seen = topics if topics is not None else sorted({t for p in posts for t in p.topics})
    learnable: list[str] = []
    skipped: list[str] = []
    for topic in seen:
        positives = sum(1 for post in posts if topic in post.topics)
        if MIN_POSITIVES <= positives < len(posts):
            learnable.append(topic)
        else:
            skipped.append(topic)
    return learnable, skipped


def _fit(
    documents: Sequence[list[str]],
    cue_matrix: np.ndarray[Any, np.dtype[np.float64]],
    labels: np.ndarray[Any, np.dtype[np.bool_]],
    topics: Sequence[str],
) -> tuple[dict[str, int], Any, Any, Any, Any]:
    """Vocabulary, idf, word weights, cue weights and intercepts fitted on ``documents``."""
    from scipy import sparse  # type: ignore[import-untyped]  # scipy ships no type stubs
    from sklearn.linear_model import LogisticRegression

    frequency: dict[str, int] = {}
    for document in documents:
        for feature in set(document):
            frequency[feature] = frequency.get(feature, 0) + 1
    names = sorted(f for f, df in frequency.items() if df >= MIN_DOCUMENT_FREQUENCY)
    vocabulary = {name: row for row, name in enumerate(names)}
    total = len(documents)
    idf = np.array([math.log((1 + total) / (1 + frequency[n])) + 1.0 for n in names])
    data: list[float] = []
    indices: list[int] = []
    pointers = [0]
    for document in documents:
        counts: dict[int, int] = {}
        for feature in document:
            row = vocabulary.get(feature)
            if row is not None:
                counts[row] = counts.get(row, 0) + 1
        values = {r: (1.0 + math.log(c)) * idf[r] for r, c in sorted(counts.items())}
        norm = math.sqrt(sum(v * v for v in values.values())) or 1.0
        indices.extend(values)
        data.extend(v / norm for v in values.values())
        pointers.append(len(indices))
    words = sparse.csr_matrix((data, indices, pointers), shape=(total, len(names)))
    features = sparse.hstack([words, sparse.csr_matrix(CUE_SCALE * cue_matrix)]).tocsr()
    weights = np.zeros((features.shape[1], len(topics)))
    intercepts = np.zeros(len(topics))
    for column in range(len(topics)):
        regression = LogisticRegression(C=REGULARIZATION_C, solver="liblinear", max_iter=1000)
        regression.fit(features, labels[:, column].astype(int))
        weights[:, column] = regression.coef_[0]
        intercepts[column] = regression.intercept_[0]
    return vocabulary, idf, weights[: len(names)], weights[len(names) :], intercepts


def train_model(
    posts: Sequence[LabelledPost],
    topics: Sequence[str] | None = None,
    taxonomy: Taxonomy | None = None,
) -> tuple[TopicModel, list[str]]:
    """Train on labelled posts; returns the model and the topics skipped for too few examples.

    ``topics`` limits (and orders) the topics learned; by default every topic seen is. With a
    ``taxonomy``, every topic's cue score is an input of the model (the shipped model's way).
    """
    learnable, skipped = _learnable(posts, topics)
    if not learnable:
        raise ValueError(f"no topic has at least {MIN_POSITIVES} positive and one negative example")
    documents = [text_features(tokenize(post.text)) for post in posts]
    labels = np.array([[topic in post.topics for topic in learnable] for post in posts])
    cues = _cue_matrix(posts, taxonomy)
    vocabulary, idf, weights, cue_weights, intercepts = _fit(documents, cues, labels, learnable)
    model = TopicModel(
        topics=tuple(learnable),
        vocabulary=vocabulary,
        idf=idf,
        weights=weights,
        intercepts=intercepts,
        cue_inputs=taxonomy.ids if taxonomy is not None else (),
        cue_weights=cue_weights,
        cue_scale=CUE_SCALE,
        taxonomy_digest=taxonomy_digest(taxonomy) if taxonomy is not None else "",
        trained_on=len(posts),
    )
    return model, skipped


def cross_validation_folds(count: int, folds: int, seed: int = CV_SEED) -> list[int]:
    """The fold of each of ``count`` posts: a seeded shuffle dealt round-robin into ``folds``."""
    if not 2 <= folds <= count:
        raise ValueError(f"folds must be between 2 and the number of posts ({count})")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    fold_of = [0] * count
    for position, index in enumerate(order):
        fold_of[index] = position % folds
    return fold_of


def cross_validate(
    posts: Sequence[LabelledPost],
    taxonomy: Taxonomy | None,
    folds: int = 5,
    threshold: float = 0.5,
) -> tuple[tuple[str, ...], list[frozenset[str]]]:
    """Each post's predicted topics by a model trained on the other folds (blend: topics the
    models do not learn fall back to their cue score). Returns the topic ids and predictions."""
    from service.core.enrich.topics import TopicClassifier

    fold_of = cross_validation_folds(len(posts), folds)
    predicted: list[frozenset[str]] = [frozenset()] * len(posts)
    topic_ids: tuple[str, ...] = ()
    for fold in range(folds):
        train = [post for post, f in zip(posts, fold_of, strict=True) if f != fold]
        model, _ = train_model(train, taxonomy.ids if taxonomy else None, taxonomy)
        classifier = (
            TopicClassifier(taxonomy, model, "blend", threshold) if taxonomy is not None else None
        )
        for index, post in enumerate(posts):
            if fold_of[index] != fold:
                continue
            if classifier is not None:
                topics = classifier.classify(post.text, post.lang)
                predicted[index] = frozenset(t.id for t in topics)
                topic_ids = classifier.topic_ids
            else:
                scores = model.predict(post.text)
                predicted[index] = frozenset(t for t, s in scores.items() if s >= threshold)
                topic_ids = model.topics
    return topic_ids, predicted
