"""The trained topic model: its features, its JSON file, and its probabilities for a post.

A model is one logistic regression per topic over two kinds of input:

- **words**: TF-IDF (sublinear term frequency, L2-normalized) of each word's key (its lemma for a
  Cyrillic word, its normalized form otherwise) and of its first ``PREFIX_CHARS`` characters (a
  cheap stem: ``inflation``/``inflación``/``inflações``, ``санкций``/``санкції``);
- **cues**: the taxonomy's cue score of every topic (``CueScorer.scores``), times ``cue_scale``.
  The cues are written per language, so they carry what the labelled posts of one language teach
  to the posts of all the others; the words add what the cue lists miss.

It is saved as plain JSON (no pickle: loading a model runs no code from the file) and applied
here with numpy; training (scikit-learn) lives in ``topic_training``. Labelled posts are JSON lines
``{"text": ..., "topics": [...], "lang": optional}``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.core.morphology import lemma
from service.core.text import Token, is_cyrillic, tokenize

if TYPE_CHECKING:
    from service.core.enrich.topics import Taxonomy

MODEL_FORMAT = "tgwatch-topics/2"
# The stem feature: the first 5 characters of words longer than that. 4 and 6 did no better in
# cross-validation; 5 keeps most inflected forms and Latin cognates of one word together.
PREFIX_CHARS = 5
# Token cache of a model (normalized word -> its feature rows): a worker meets the same words
# again and again; bounded so a long-running process cannot grow it without limit.
TOKEN_CACHE_SIZE = 100_000
DEFAULT_MODEL_FILE = "topic_model.json"


class LabelledDataError(ValueError):
    """A labelled file is malformed; the message names the file and line."""


class ModelFileError(ValueError):
    """A model file is unreadable or not a tgwatch topic model; the message names the file."""


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


def token_features(norm: str) -> tuple[str, ...]:
    """The features one normalized token contributes (none for a number)."""
    if norm.isdigit():
        return ()
    key = lemma(norm) if is_cyrillic(norm) else norm
    if len(norm) > PREFIX_CHARS:
        return ("w:" + key, "p:" + norm[:PREFIX_CHARS])
    return ("w:" + key,)


def text_features(tokens: Iterable[Token]) -> list[str]:
    """Every feature of a tokenized text, repeated as often as it occurs."""
    return [feature for token in tokens for feature in token_features(token.norm)]


def taxonomy_digest(taxonomy: Taxonomy) -> str:
    """A short fingerprint of a taxonomy's topics and cues: a model records the one it learned
    with, so a stale shipped model (cues edited, model not retrained) is caught by a test."""
    data = [
        [topic.id, sorted(topic.cues.items()), sorted(topic.strong.items())]
        for topic in taxonomy.topics
    ]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


def sigmoid(z: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    result: np.ndarray[Any, np.dtype[np.float64]] = 1.0 / (1.0 + np.exp(-z))
    return result


@dataclass(eq=False)
class TopicModel:
    """A trained model: ``predict(tokens, cue_scores)`` gives a probability per topic it learned.

    ``vocabulary`` maps a feature to its row of ``idf`` and ``weights`` (rows: features, columns:
    ``topics``); ``cue_weights`` has one row per topic of ``cue_inputs`` (empty for a model
    trained without a taxonomy).
    """

    topics: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray[Any, np.dtype[np.float64]]
    weights: np.ndarray[Any, np.dtype[np.float64]]
    intercepts: np.ndarray[Any, np.dtype[np.float64]]
    cue_inputs: tuple[str, ...] = ()
    cue_weights: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros((0, 0))
    )
    cue_scale: float = 1.0
    taxonomy_digest: str = ""
    trained_on: int = 0
    _rows: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def _token_rows(self, norm: str) -> tuple[int, ...]:
        rows = self._rows.get(norm)
        if rows is None:
            vocabulary = self.vocabulary
            rows = tuple(vocabulary[f] for f in token_features(norm) if f in vocabulary)
            if len(self._rows) >= TOKEN_CACHE_SIZE:
                self._rows.clear()
            self._rows[norm] = rows
        return rows

    def word_vector(self, tokens: Iterable[Token]) -> dict[int, float]:
        """The post's TF-IDF values by feature row (sublinear tf, L2-normalized)."""
        counts: dict[int, int] = {}
        for token in tokens:
            for row in self._token_rows(token.norm):
                counts[row] = counts.get(row, 0) + 1
        idf = self.idf
        values = {row: (1.0 + math.log(count)) * float(idf[row]) for row, count in counts.items()}
        norm = math.sqrt(sum(v * v for v in values.values()))
        return {row: v / norm for row, v in values.items()} if norm else {}

    def predict(
        self,
        text: str | None = None,
        tokens: Sequence[Token] | None = None,
        cue_scores: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """Probability per topic of ``text`` (or of its ``tokens``, when already tokenized).

        ``cue_scores``: the taxonomy's cue score per topic; required (and used) only by a model
        with ``cue_inputs``; a topic missing from it counts as 0.
        """
        if tokens is None:
            tokens = tokenize(text or "")
        z = self.intercepts.copy()
        vector = self.word_vector(tokens)
        if vector:
            rows = np.fromiter(vector.keys(), dtype=np.intp, count=len(vector))
            values = np.fromiter(vector.values(), dtype=np.float64, count=len(vector))
            z += values @ self.weights[rows]
        if self.cue_inputs:
            if cue_scores is None:
                raise ValueError("this topic model weighs the taxonomy's cues: pass cue_scores")
            cues = np.array([cue_scores.get(topic, 0.0) for topic in self.cue_inputs])
            z += (self.cue_scale * cues) @ self.cue_weights
        return dict(zip(self.topics, sigmoid(z).tolist(), strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-ready data (weights rounded to 6 significant digits)."""
        names = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            "format": MODEL_FORMAT,
            "topics": list(self.topics),
            "trained_on": self.trained_on,
            "prefix_chars": PREFIX_CHARS,
            "taxonomy_digest": self.taxonomy_digest,
            "cue_inputs": list(self.cue_inputs),
            "cue_scale": self.cue_scale,
            "intercepts": _rounded(self.intercepts),
            "cue_weights": [_rounded(row) for row in self.cue_weights],
            "features": {
                name: [_round(float(self.idf[row])), *_rounded(self.weights[row])]
                for row, name in enumerate(names)
            },
        }

    @classmethod
    def from_dict(cls, data: object, source: str = "<model>") -> TopicModel:
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ModelFileError(
                f"{source}: not a tgwatch topic model ({MODEL_FORMAT}); "
                "make one with `tgwatch topics train`"
            )
        try:
            topics = tuple(str(t) for t in data["topics"])
            if data.get("prefix_chars", PREFIX_CHARS) != PREFIX_CHARS:
                raise ModelFileError(f"{source}: made with other features; train it again")
            features: dict[str, list[float]] = data["features"]
            vocabulary = {name: row for row, name in enumerate(features)}
            table = np.array(list(features.values()), dtype=np.float64).reshape(
                len(features), len(topics) + 1
            )
            cue_inputs = tuple(str(t) for t in data.get("cue_inputs", ()))
            cue_weights = np.array(data.get("cue_weights", []), dtype=np.float64)
            model = cls(
                topics=topics,
                vocabulary=vocabulary,
                idf=np.ascontiguousarray(table[:, 0]),
                weights=np.ascontiguousarray(table[:, 1:]),
                intercepts=np.array(data["intercepts"], dtype=np.float64),
                cue_inputs=cue_inputs,
                cue_weights=cue_weights.reshape(len(cue_inputs), len(topics)),
                cue_scale=float(data.get("cue_scale", 1.0)),
                taxonomy_digest=str(data.get("taxonomy_digest", "")),
                trained_on=int(data.get("trained_on", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{source}: malformed topic model ({exc})") from None
        if model.intercepts.shape != (len(topics),):
            raise ModelFileError(f"{source}: malformed topic model (intercepts)")
        return model

    def save(self, path: Path | str) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        target.write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> TopicModel:
        """Load a model saved by ``save`` (plain JSON: no code runs from the file)."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ModelFileError(f"{path}: cannot read the topic model ({reason})") from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str) -> TopicModel:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        return cls.from_dict(data, source)


def load_default_model() -> TopicModel:
    """The model shipped in the package, trained on ``service/data/eval/train.jsonl`` with the
    default taxonomy (``tgwatch topics train``)."""
    text = resources.files("service").joinpath("data", DEFAULT_MODEL_FILE).read_text("utf-8")
    return TopicModel.from_text(text, f"{DEFAULT_MODEL_FILE} (shipped)")


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _rounded(values: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
    return [_round(float(v)) for v in values]
