"""Score a post against a topic taxonomy: load and validate it, match its cues, blend a model.

A taxonomy (YAML, the default one in ``service/data/topics.yaml``) lists topics, each with an id,
a name, a description and cues per language. Cues are words or phrases; Cyrillic words match by
lemma (``санкций`` matches the cue ``санкция``), other words by their normalized form, and a cue
ending in ``*`` matches any word starting with it (``sanction*``). Every topic is scored on its
own (multi-label): distinct cues found add their weight, the sum is damped for long posts and
mapped to (0, 1); topics at or above the threshold are the post's topics, so a post may have
several or none. A post whose language has cues uses only that language's cues, so a word that
means something else elsewhere (French ``sec``, English ``SEC``) does not leak across; a post of
another or unknown language uses every cue. A trained model (``topic_model``) can weigh these cue
scores together with the post's words; ``TopicClassifier`` combines them by mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from service.core.model import TopicScore
from service.core.morphology import lemma
from service.core.text import Token, is_cyrillic, normalize, tokenize

if TYPE_CHECKING:
    from service.core.enrich.topic_model import TopicModel

Mode = Literal["cues", "model", "blend"]
MODES: tuple[Mode, ...] = ("cues", "model", "blend")

DEFAULT_THRESHOLD = 0.5
# Weights: an ordinary cue is weak evidence on its own ("bank", "visit"); two distinct ones, or
# one strong cue ("ceasefire", "биткоин"), carry a topic over the default threshold.
CUE_WEIGHT = 1.0
STRONG_CUE_WEIGHT = 2.0
# score = 1 - exp(-evidence / SATURATION): 1 cue → 0.49, 2 cues → 0.74, 4 cues → 0.93.
SATURATION = 1.5
# A repeated cue adds this much of its weight per repetition, at most twice.
REPEAT_BONUS = 0.25
# Posts longer than this many tokens have their evidence divided by sqrt(tokens / this): a long
# statement touching many subjects in passing should not collect every topic.
LENGTH_NORM_TOKENS = 150

_TOPIC_KEYS = {"id", "name", "description", "cues", "strong"}
_TOP_KEYS = {"version", "threshold", "mode", "topics"}


class TaxonomyError(ValueError):
    """A taxonomy file is unreadable or malformed; the message names the file and the place."""


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of a taxonomy with its cues per language (as written, before compiling)."""

    id: str
    name: str
    description: str
    cues: Mapping[str, tuple[str, ...]]
    strong: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Taxonomy:
    topics: tuple[Topic, ...]
    threshold: float = DEFAULT_THRESHOLD
    mode: Mode = "cues"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(topic.id for topic in self.topics)


def _cue_lists(value: object, where: str) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TaxonomyError(f"{where}: expected a mapping of language code to a list of cues")
    result: dict[str, tuple[str, ...]] = {}
    for lang, cues in value.items():
        if not isinstance(lang, str) or not lang.isalpha() or len(lang) not in (2, 3):
            raise TaxonomyError(f"{where}: {lang!r} is not a language code (e.g. 'ru')")
        if not isinstance(cues, list) or not all(isinstance(c, str) and c.strip() for c in cues):
            raise TaxonomyError(f"{where}.{lang}: expected a list of non-empty strings")
        for cue in cues:
            words = tokenize(cue.rstrip("*"))
            if not words:
                raise TaxonomyError(f"{where}.{lang}: cue {cue!r} has no word in it")
            if cue.endswith("*") and (len(words) > 1 or len(words[0].norm) < 3):
                raise TaxonomyError(
                    f"{where}.{lang}: prefix cue {cue!r} must be one word of 3+ letters"
                )
        result[lang] = tuple(cue.strip() for cue in cues)
    return result


def parse_taxonomy(data: object, source: str = "<taxonomy>") -> Taxonomy:
    """Validate a taxonomy's parsed YAML; raise TaxonomyError naming what is wrong and where."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"{source}: expected a mapping with a 'topics' list")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise TaxonomyError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    threshold = data.get("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise TaxonomyError(f"{source}: threshold must be a number between 0 and 1")
    mode = data.get("mode", "cues")
    if mode not in MODES:
        raise TaxonomyError(f"{source}: mode must be one of {', '.join(MODES)}")
    raw_topics = data.get("topics")
    if not isinstance(raw_topics, list) or not raw_topics:
        raise TaxonomyError(f"{source}: 'topics' must be a non-empty list")
    topics: list[Topic] = []
    seen: set[str] = set()
    for number, item in enumerate(raw_topics, start=1):
        where = f"{source}: topic #{number}"
        if not isinstance(item, dict):
            raise TaxonomyError(f"{where}: expected a mapping")
        topic_id = item.get("id")
        if not isinstance(topic_id, str) or not topic_id.replace("_", "").isalnum():
            raise TaxonomyError(f"{where}: 'id' must be a word of letters, digits and '_'")
        where = f"{source}: topic {topic_id!r}"
        if topic_id in seen:
            raise TaxonomyError(f"{where}: duplicate id")
        seen.add(topic_id)
        unknown = set(item) - _TOPIC_KEYS
        if unknown:
            raise TaxonomyError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        cues = _cue_lists(item.get("cues"), f"{where}.cues")
        strong = _cue_lists(item.get("strong"), f"{where}.strong")
        if not cues and not strong:
            raise TaxonomyError(f"{where}: has no cues")
        topics.append(
            Topic(
                id=topic_id,
                name=str(item.get("name") or topic_id),
                description=str(item.get("description") or ""),
                cues=cues,
                strong=strong,
            )
        )
    return Taxonomy(topics=tuple(topics), threshold=float(threshold), mode=mode)


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load a taxonomy file, or the default one shipped in the package when ``path`` is None."""
    if path is None:
        source = "topics.yaml (default)"
        text = resources.files("service").joinpath("data", "topics.yaml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise TaxonomyError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{source}: not valid YAML ({exc})") from None
    return parse_taxonomy(data, source)


@dataclass(frozen=True, slots=True)
class _Cue:
    topic: str
    lang: str
    keys: tuple[str, ...]
    prefix: bool
    weight: float
    text: str


def token_keys(norm: str) -> frozenset[str]:
    """What a text token can match: itself and, for a Cyrillic word, its most likely lemma.

    Only the most likely lemma: every possible one (``morphology.lemmas``) would let ``после``
    ("after") match the cue ``посол`` ("ambassador") through a rare reading.
    """
    return frozenset((norm, lemma(norm))) if is_cyrillic(norm) else frozenset((norm,))


def _cue_keys(cue: str) -> tuple[tuple[str, ...], bool]:
    prefix = cue.endswith("*")
    tokens = [token.norm for token in tokenize(cue.rstrip("*"))]
    keys = [lemma(norm) if is_cyrillic(norm) else norm for norm in tokens]
    if prefix:
        # The last word of a prefix cue is matched as written, not lemmatized.
        keys[-1] = normalize(tokens[-1])
    return tuple(keys), prefix


class CueScorer:
    """A taxonomy's cues compiled once into dicts keyed by the first word of each cue."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._exact: dict[str, list[_Cue]] = {}
        # Prefix cues are keyed by their first three characters; a token looks up its own three.
        self._prefix: dict[str, list[_Cue]] = {}
        self.languages: set[str] = set()
        for topic in taxonomy.topics:
            for table, weight in ((topic.cues, CUE_WEIGHT), (topic.strong, STRONG_CUE_WEIGHT)):
                for lang, cues in table.items():
                    self.languages.add(lang)
                    for text in cues:
                        keys, prefix = _cue_keys(text)
                        cue = _Cue(topic.id, lang, keys, prefix, weight, text)
                        if cue.prefix:
                            self._prefix.setdefault(keys[0][:3], []).append(cue)
                        else:
                            self._exact.setdefault(keys[0], []).append(cue)

    @staticmethod
    def _matches_at(cue: _Cue, keys: Sequence[frozenset[str]], i: int) -> bool:
        """Whether the rest of a phrase cue follows the token at ``i`` (the first one matched)."""
        if i + len(cue.keys) > len(keys):
            return False
        return all(key in keys[i + n] for n, key in enumerate(cue.keys[1:], start=1))

    def evidence(self, tokens: Sequence[Token], lang: str | None = None) -> dict[str, float]:
        """Per topic, the weighted count of distinct cues found (before damping and squashing)."""
        only = lang if lang in self.languages else None
        norms = [token.norm for token in tokens]
        keys = [token_keys(norm) for norm in norms]
        counts: dict[_Cue, int] = {}
        for i, token_keyset in enumerate(keys):
            for key in token_keyset:
                for cue in self._exact.get(key, ()):
                    if (only is None or cue.lang == only) and self._matches_at(cue, keys, i):
                        counts[cue] = counts.get(cue, 0) + 1
            for cue in self._prefix.get(norms[i][:3], ()):
                if (only is None or cue.lang == only) and norms[i].startswith(cue.keys[0]):
                    counts[cue] = counts.get(cue, 0) + 1
        evidence: dict[str, float] = {}
        for cue, count in counts.items():
            gain = cue.weight * (1 + REPEAT_BONUS * min(count - 1, 2))
            evidence[cue.topic] = evidence.get(cue.topic, 0.0) + gain
        return evidence

    def scores(self, tokens: Sequence[Token], lang: str | None = None) -> dict[str, float]:
        """Per topic of the taxonomy, a score in [0, 1) from the cues found in ``tokens``."""
        damping = math.sqrt(max(1.0, len(tokens) / LENGTH_NORM_TOKENS))
        found = self.evidence(tokens, lang)
        return {
            topic_id: 1 - math.exp(-found.get(topic_id, 0.0) / damping / SATURATION)
            for topic_id in self.taxonomy.ids
        }


class TopicClassifier:
    """Topics of a post from cues, a trained model, or a blend of both, with one threshold.

    ``blend`` with a model that weighs the cue scores (``cue_inputs``, like the shipped one and
    every model ``tgwatch topics train`` makes): the model's probability for the topics it
    learned, the cue score for the taxonomy's other topics. The model learned from labelled posts
    how far to trust each topic's cues next to the words, which beat taking the higher of the two
    in cross-validation. With a model trained without cues, ``blend`` takes per topic the higher
    of the cue score and the model's probability. ``model`` gives the model's topics only.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        model: TopicModel | None = None,
        mode: Mode | None = None,
        threshold: float | None = None,
    ) -> None:
        chosen = mode or ("blend" if model is not None else taxonomy.mode)
        if chosen not in MODES:
            raise ValueError(f"topic mode must be one of {', '.join(MODES)}, not {chosen!r}")
        if chosen != "cues" and model is None:
            raise ValueError(f"topic mode {chosen!r} needs a trained model (tgwatch topics train)")
        self.taxonomy = taxonomy
        self.model = model
        self.mode: Mode = chosen
        self.threshold = taxonomy.threshold if threshold is None else threshold
        self.cues = CueScorer(taxonomy)

    @property
    def topic_ids(self) -> tuple[str, ...]:
        ids = list(self.taxonomy.ids) if self.mode != "model" else []
        if self.model is not None and self.mode != "cues":
            ids.extend(topic for topic in self.model.topics if topic not in ids)
        return tuple(ids)

    def scores(
        self, text: str, lang: str | None = None, tokens: Sequence[Token] | None = None
    ) -> dict[str, float]:
        """Every topic's score for ``text`` in ``lang`` (None: unknown); tokens may be passed."""
        if tokens is None:
            tokens = tokenize(text)
        cue_scores = self.cues.scores(tokens, lang)
        model = self.model
        if self.mode == "cues" or model is None:
            return cue_scores
        predicted = model.predict(text, tokens, cue_scores if model.cue_inputs else None)
        if self.mode == "model":
            return predicted
        if model.cue_inputs:
            return {
                topic_id: predicted.get(topic_id, cue_scores.get(topic_id, 0.0))
                for topic_id in self.topic_ids
            }
        return {
            topic_id: max(cue_scores.get(topic_id, 0.0), predicted.get(topic_id, 0.0))
            for topic_id in self.topic_ids
        }

    def classify(
        self, text: str, lang: str | None = None, tokens: Sequence[Token] | None = None
    ) -> tuple[TopicScore, ...]:
        """The topics at or above the threshold, best first."""
        chosen = [
            TopicScore(topic_id, score)
            for topic_id, score in self.scores(text, lang, tokens).items()
            if score >= self.threshold
        ]
        chosen.sort(key=lambda topic: (-topic.score, topic.id))
        return tuple(chosen)


def describe(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """The taxonomy as plain data (for docs and the CLI)."""
    return [
        {
            "id": topic.id,
            "name": topic.name,
            "description": topic.description,
            "languages": sorted(set(topic.cues) | set(topic.strong)),
        }
        for topic in taxonomy.topics
    ]
