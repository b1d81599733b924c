"""The analyzers a process builds from its settings, the same in workers and in backtests."""

from __future__ import annotations

from collections.abc import Sequence

from service.config import Settings
from service.core.enrich import Enricher, build_enricher
from service.core.model import WatchedEntity


def enricher_from_settings(settings: Settings, watched: Sequence[WatchedEntity] = ()) -> Enricher:
    """Language, topics and entities as TGWATCH_LANGUAGES, _LANGUAGE_ACCURACY, _TAXONOMY_FILE,
    _TOPIC_MODEL, _TOPIC_MODE, _NER and _NER_LANGUAGES say (about a second to load; build it
    once)."""
    return build_enricher(
        settings.languages,
        settings.taxonomy_file,
        settings.topic_model,
        settings.ner,
        watched,
        ner_languages=tuple(settings.ner_languages),
        topic_mode=settings.topic_mode,
        language_accuracy=settings.language_accuracy,
    )
