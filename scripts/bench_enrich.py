"""Benchmark enrichment: median cost per ~1 KB post of each step (language, topics, NER, watched).

Posts are built from the shipped held-out topic set: texts of one language joined until ~1 KB of
UTF-8, and the same texts one by one (short posts, as most channel posts are). Each step runs on
every post once to warm caches (lemma caches, lazy model loads), then ``--rounds`` times; the
median per post is reported, and the memory the loaded topic model holds. Run from the
repository root:

    .venv/bin/python scripts/bench_enrich.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.core.enrich import build_enricher
from service.core.enrich.entities import WatchedMatcher
from service.core.enrich.ner import NamedEntityRecognizer
from service.core.enrich.topic_model import load_default_model, read_labelled
from service.core.enrich.topics import TopicClassifier
from service.core.model import WatchedEntity
from service.core.post import Post
from service.core.text import clear_caches, tokenize

POST_BYTES = 1024
EVAL_SET = Path(__file__).resolve().parent.parent / "service" / "data" / "eval" / "heldout.jsonl"
# A rules file's worth of watched entities, with Russian and English aliases.
WATCHED = [
    WatchedEntity(
        f"person{i}",
        f"Person {i}",
        (f"Ivan Petrov{i}", f"Petrov{i}", f"Иван Петров{i}", f"Петров{i}"),
    )
    for i in range(200)
] + [
    WatchedEntity("lavrov", "Sergey Lavrov", ("Sergey Lavrov", "Lavrov", "Лавров")),
    WatchedEntity("zakharova", "Maria Zakharova", ("Maria Zakharova", "Zakharova", "Захарова")),
]


def model_memory_mb() -> float:
    """What loading the shipped topic model allocates and keeps (Python objects and arrays)."""
    gc.collect()
    tracemalloc.start()
    model = load_default_model()
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del model
    return held / 1e6


def make_posts() -> list[tuple[str, str]]:
    """(lang, text) posts of ~1 KB made by joining evaluation texts of one language."""
    by_lang: dict[str, list[str]] = {}
    for post in read_labelled(EVAL_SET):
        by_lang.setdefault(post.lang or "?", []).append(post.text)
    posts: list[tuple[str, str]] = []
    for lang, texts in by_lang.items():
        current: list[str] = []
        for text in texts:
            current.append(text)
            if len("\n\n".join(current).encode()) >= POST_BYTES:
                posts.append((lang, "\n\n".join(current)))
                current = []
    return posts


def median_ms(
    step: Callable[[str, str], object], posts: list[tuple[str, str]], rounds: int
) -> float:
    for lang, text in posts:
        step(lang, text)
    samples: list[float] = []
    for _ in range(rounds):
        for lang, text in posts:
            start = time.perf_counter()
            step(lang, text)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    posts = make_posts()
    short = [(post.lang or "?", post.text) for post in read_labelled(EVAL_SET)]
    memory_mb = model_memory_mb()
    started = time.perf_counter()
    enricher = build_enricher(watched=WATCHED)
    build_s = time.perf_counter() - started
    ner = NamedEntityRecognizer()
    started = time.perf_counter()
    ner.load()
    ner_load_s = time.perf_counter() - started
    taxonomy = enricher.topics.taxonomy
    cue_classifier = TopicClassifier(taxonomy, mode="cues")
    model_classifier = TopicClassifier(taxonomy, enricher.topics.model, mode="model")
    matcher = WatchedMatcher(WATCHED)

    def language(lang: str, text: str) -> object:
        return enricher.language.detect(text)

    tokens = {text: tokenize(text) for _, text in posts + short}

    def tokens_step(lang: str, text: str) -> object:
        return tokenize(text)

    def topics_cues(lang: str, text: str) -> object:
        return cue_classifier.classify(text, lang, tokens[text])

    def tokens_cold(lang: str, text: str) -> object:
        clear_caches()  # every run of the post is new: the per-character path and folding
        return tokenize(text)

    def topics(lang: str, text: str) -> object:
        return enricher.topics.classify(text, lang, tokens[text])

    def topics_model(lang: str, text: str) -> object:
        return model_classifier.classify(text, lang, tokens[text])

    def watched(lang: str, text: str) -> object:
        return matcher.find(text, tokens[text])

    stored = [
        Post(channel="bench", message_id=1, date=datetime.now(UTC), text=t)
        for _, t in posts + short
    ]
    by_text = {post.text: post for post in stored}

    def whole(lang: str, text: str) -> object:
        return enricher.enrich(by_text[text])

    def named(lang: str, text: str) -> object:
        return ner.entities(text, lang)

    ru = [(lang, text) for lang, text in posts if lang == "ru"]
    en = [(lang, text) for lang, text in posts if lang == "en"]
    rows = [
        ("language (lingua, 6 languages)", median_ms(language, posts, args.rounds)),
        (
            "tokenize (text.py, shared by topics and watched)",
            median_ms(tokens_step, posts, args.rounds),
        ),
        ("tokenize, text never seen (run cache empty)", median_ms(tokens_cold, posts, args.rounds)),
        ("topics, cues only (mode cues)", median_ms(topics_cues, posts, args.rounds)),
        ("topics, blend (default: cues + shipped model)", median_ms(topics, posts, args.rounds)),
        ("topics, model (mode model)", median_ms(topics_model, posts, args.rounds)),
        ("watched entities (202 entities)", median_ms(watched, posts, args.rounds)),
        ("NER ru (natasha)", median_ms(named, ru, args.rounds)),
        ("NER en (heuristic)", median_ms(named, en, args.rounds)),
        (
            "enrich() whole, NER off (language+tokenize+topics+watched)",
            median_ms(whole, posts, args.rounds),
        ),
        ("short posts: topics, blend", median_ms(topics, short, args.rounds)),
        ("short posts: enrich() whole, NER off", median_ms(whole, short, args.rounds)),
    ]
    print(f"posts: {len(posts)} of ~{POST_BYTES} bytes, {len(short)} short; rounds: {args.rounds}")
    print(f"build_enricher: {build_s:.2f} s; NER load: {ner_load_s:.2f} s")
    print(f"topic model held in memory once loaded: {memory_mb:.1f} MB")
    print("| step | median ms per post |")
    print("| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")
    steps = dict(rows)
    total = sum(
        steps[name]
        for name in (
            "language (lingua, 6 languages)",
            "topics, cues (default)",
            "watched entities (202 entities)",
        )
    )
    print(f"language + topics (cues) + watched entities: {total:.3f} ms per post")


if __name__ == "__main__":
    main()
