"""Enrichment fixtures: the slow-to-build parts are built once per test session."""

from __future__ import annotations

import pytest

from service.core.enrich import Enricher, build_enricher
from service.core.enrich.language import LanguageDetector
from service.core.enrich.ner import NamedEntityRecognizer


@pytest.fixture(scope="session")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    """The default enricher, NER off (the worker's default)."""
    return build_enricher()


@pytest.fixture(scope="session")
def recognizer() -> NamedEntityRecognizer:
    """NER for ru and en, loaded once (~1 s)."""
    ner = NamedEntityRecognizer()
    ner.load()
    return ner
