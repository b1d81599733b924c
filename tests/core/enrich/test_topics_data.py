"""The labelled data behind the topic model: big enough, in every language, and a held-out set
that shares no post (nor a near copy of one) with the training set."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from service.core.enrich.topic_model import LabelledPost, read_labelled
from service.core.enrich.topics import load_taxonomy
from service.core.text import normalize, tokenize

LANGUAGES = {"ru", "uk", "en", "es", "fr", "de"}
# Token-set Jaccard similarity at or above which two posts count as near copies. The closest
# pair today is ~0.41 (two different events sharing "for the first time since 2021").
NEAR_COPY = 0.5


def load(name: str) -> list[LabelledPost]:
    return read_labelled(str(resources.files("service.data").joinpath(f"eval/{name}")))


@pytest.fixture(scope="module")
def train() -> list[LabelledPost]:
    return load("train.jsonl")


@pytest.fixture(scope="module")
def heldout() -> list[LabelledPost]:
    return load("heldout.jsonl")


def words(text: str) -> frozenset[str]:
    return frozenset(token.norm for token in tokenize(text) if len(token.norm) > 2)


def test_training_set_has_150_posts_per_topic_and_negatives(train: list[LabelledPost]) -> None:
    counts = Counter(topic for post in train for topic in post.topics)
    assert set(counts) == set(load_taxonomy().ids)
    assert min(counts.values()) >= 150, counts
    assert sum(1 for post in train if not post.topics) >= 150
    by_lang = Counter(post.lang for post in train)
    assert set(by_lang) == LANGUAGES
    assert min(by_lang.values()) >= 200, by_lang


def test_every_language_has_every_topic_in_both_sets(
    train: list[LabelledPost], heldout: list[LabelledPost]
) -> None:
    for posts, floor in ((train, 20), (heldout, 7)):
        counts = Counter((post.lang, topic) for post in posts for topic in post.topics)
        for lang in LANGUAGES:
            for topic in load_taxonomy().ids:
                assert counts[(lang, topic)] >= floor, (lang, topic)


def test_heldout_shares_no_post_with_training(
    train: list[LabelledPost], heldout: list[LabelledPost]
) -> None:
    seen = {normalize(post.text) for post in train}
    assert not [post.text for post in heldout if normalize(post.text) in seen]
    index: dict[str, list[int]] = {}
    train_words = [words(post.text) for post in train]
    for number, bag in enumerate(train_words):
        for word in bag:
            index.setdefault(word, []).append(number)
    close: list[tuple[float, str, str]] = []
    for post in heldout:
        bag = words(post.text)
        candidates = {number for word in bag for number in index.get(word, ())}
        for number in candidates:
            other = train_words[number]
            similarity = len(bag & other) / len(bag | other)
            if similarity >= NEAR_COPY:
                close.append((similarity, post.text, train[number].text))
    assert not close, close[:5]


def test_no_duplicates_within_a_set(train: list[LabelledPost], heldout: list[LabelledPost]) -> None:
    for posts in (train, heldout):
        texts = Counter(normalize(post.text) for post in posts)
        assert [text for text, count in texts.items() if count > 1] == []
