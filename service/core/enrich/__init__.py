"""Enrich a post before matching: its language, its topics and the entities it names.

Build one ``Enricher`` per process with ``build_enricher(...)`` (it loads the language detector,
the taxonomy and, if given, a trained topic model; NER models load on first use), then call
``enricher.enrich(post)`` for every post. When the rules file changes, ``with_watched(...)``
gives an enricher for the new watched entities that shares everything already loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from service.core.enrich.entities import WatchedMatcher, merge_entities, telegram_entities
from service.core.enrich.language import DEFAULT_LANGUAGES, LanguageDetector
from service.core.enrich.ner import NER_LANGUAGES, NamedEntityRecognizer
from service.core.enrich.topics import Mode, TopicClassifier, load_taxonomy
from service.core.model import Enrichment, FoundEntity, WatchedEntity
from service.core.post import Post
from service.core.text import Token, tokenize

__all__ = ["Enricher", "build_enricher"]


@dataclass(frozen=True, slots=True)
class Enricher:
    """Everything needed to enrich posts, loaded once. Immutable: share it across threads."""

    language: LanguageDetector
    topics: TopicClassifier
    watched: WatchedMatcher
    ner: NamedEntityRecognizer | None = None

    def with_watched(self, watched: Sequence[WatchedEntity]) -> Enricher:
        """The same enricher with other watched entities (cheap: the detectors are shared)."""
        return replace(self, watched=WatchedMatcher(watched))

    def detect_language(self, text: str) -> str | None:
        return self.language.detect(text)

    def entities(self, post: Post, lang: str | None) -> tuple[FoundEntity, ...]:
        text = post.text
        named = self.ner.entities(text, lang) if self.ner is not None and text else []
        return merge_entities(telegram_entities(post), named, self.watched.find(text))

    def enrich(self, post: Post, tokens: Sequence[Token] | None = None) -> Enrichment:
        """Language, topics and entities of one post version (its text or caption).
        ``tokens`` is ``tokenize(post.text)`` when the caller has it: one tokenization serves
        language detection's first pass, the topics and the watched entities."""
        text = post.text
        if not text.strip():
            return Enrichment(entities=self.entities(post, None))
        if tokens is None:
            tokens = tokenize(text)
        lang = self.language.detect(text, tokens)
        topics = self.topics.classify(text, lang, tokens)
        named = self.ner.entities(text, lang) if self.ner is not None else []
        watched = self.watched.find(text, tokens)
        entities = merge_entities(telegram_entities(post), named, watched)
        return Enrichment(lang=lang, topics=topics, entities=entities)


def build_enricher(
    languages: Sequence[str] | None = None,
    taxonomy_path: Path | str | None = None,
    model_path: Path | str | None = None,
    ner: bool = False,
    watched: Sequence[WatchedEntity] = (),
    *,
    ner_languages: Sequence[str] = NER_LANGUAGES,
    topic_mode: Mode | None = None,
    threshold: float | None = None,
    language_accuracy: str = "high",
) -> Enricher:
    """Build an enricher from configuration.

    ``languages``: ISO 639-1 codes to tell apart (default ru, uk, en, es, fr, de);
    ``language_accuracy``: lingua's model set, ``high`` (default) or ``low`` (trigrams only:
    ~15 MB instead of ~250, a little less accurate on posts of a few words).
    ``taxonomy_path``: a topics YAML file (default: the one shipped in the package).
    ``model_path``: a model made by ``tgwatch topics train``; without one, the default taxonomy
    comes with the shipped model (``topic_model.load_default_model``) unless ``topic_mode`` is
    ``cues``. With a model ``topic_mode`` defaults to ``blend`` (else the taxonomy's ``mode``,
    normally ``cues``). ``threshold`` overrides the taxonomy's. ``ner`` turns on PER/ORG/LOC
    recognition for ``ner_languages`` (ru, en): it costs milliseconds per post, so it is off
    unless asked. Raises ValueError (TaxonomyError is
    one) with a clear message on bad configuration.
    """
    detector = LanguageDetector(
        tuple(languages) if languages else DEFAULT_LANGUAGES, language_accuracy
    )
    taxonomy = load_taxonomy(taxonomy_path)
    model = None
    if model_path is not None:
        from service.core.enrich.topic_model import TopicModel

        model = TopicModel.load(model_path)
    elif taxonomy_path is None and topic_mode != "cues":
        from service.core.enrich.topic_model import load_default_model

        model = load_default_model()
    classifier = TopicClassifier(taxonomy, model, topic_mode, threshold)
    recognizer = NamedEntityRecognizer(tuple(ner_languages)) if ner else None
    return Enricher(detector, classifier, WatchedMatcher(watched), recognizer)
