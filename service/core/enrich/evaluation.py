"""Measure topic and language predictions against labelled posts: precision, recall, F1.

Per topic, and per language of the labelled posts: a language's row counts every topic label of
its posts (micro-averaged over topics), and its macro F1 averages the topics that occur in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicFigures:
    topic: str
    support: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True, slots=True)
class LanguageFigures:
    """One language's posts: label counts over all topics, and the mean F1 of its topics."""

    lang: str
    posts: int
    labels: TopicFigures
    macro_f1: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    topics: tuple[TopicFigures, ...]
    micro: TopicFigures
    posts: int
    no_topic_posts: int
    no_topic_correct: int
    lang_total: int
    lang_correct: int
    languages: tuple[LanguageFigures, ...] = ()

    @property
    def macro_f1(self) -> float:
        return sum(t.f1 for t in self.topics) / len(self.topics) if self.topics else 0.0

    @property
    def lang_accuracy(self) -> float:
        return self.lang_correct / self.lang_total if self.lang_total else 0.0


def _figures(
    topic_ids: Sequence[str],
    gold_topics: Sequence[frozenset[str]],
    predicted_topics: Sequence[frozenset[str]],
) -> tuple[list[TopicFigures], TopicFigures]:
    figures: list[TopicFigures] = []
    for topic in topic_ids:
        tp = fp = fn = 0
        for gold, predicted in zip(gold_topics, predicted_topics, strict=True):
            tp += topic in gold and topic in predicted
            fp += topic not in gold and topic in predicted
            fn += topic in gold and topic not in predicted
        figures.append(TopicFigures(topic, tp + fn, tp, fp, fn))
    micro = TopicFigures(
        "micro",
        sum(f.support for f in figures),
        sum(f.true_positives for f in figures),
        sum(f.false_positives for f in figures),
        sum(f.false_negatives for f in figures),
    )
    return figures, micro


def evaluate(
    topic_ids: Sequence[str],
    gold_topics: Sequence[frozenset[str]],
    predicted_topics: Sequence[frozenset[str]],
    gold_langs: Sequence[str | None] = (),
    predicted_langs: Sequence[str | None] = (),
) -> EvalReport:
    """Per-topic, micro-averaged and per-language figures, off-topic and language accuracy."""
    if len(gold_topics) != len(predicted_topics):
        raise ValueError("gold and predicted topics differ in length")
    figures, micro = _figures(topic_ids, gold_topics, predicted_topics)
    languages: list[LanguageFigures] = []
    if len(gold_langs) == len(gold_topics):
        for lang in sorted({lang for lang in gold_langs if lang is not None}):
            mine = [i for i, g in enumerate(gold_langs) if g == lang]
            gold = [gold_topics[i] for i in mine]
            per_topic, labels = _figures(topic_ids, gold, [predicted_topics[i] for i in mine])
            present = [f.f1 for f in per_topic if f.support]
            macro = sum(present) / len(present) if present else 0.0
            languages.append(LanguageFigures(lang, len(mine), labels, macro))
    no_topic = [(g, p) for g, p in zip(gold_topics, predicted_topics, strict=True) if not g]
    langs = [(g, p) for g, p in zip(gold_langs, predicted_langs, strict=False) if g is not None]
    return EvalReport(
        topics=tuple(figures),
        micro=micro,
        posts=len(gold_topics),
        no_topic_posts=len(no_topic),
        no_topic_correct=sum(1 for _, predicted in no_topic if not predicted),
        lang_total=len(langs),
        lang_correct=sum(1 for gold, predicted in langs if gold == predicted),
        languages=tuple(languages),
    )


def format_report(report: EvalReport) -> str:
    """Plain-text tables of the figures: topics, then languages."""
    lines = [f"{'topic':<20} {'support':>7} {'precision':>9} {'recall':>6} {'f1':>6}"]
    for row in (*report.topics, report.micro):
        lines.append(
            f"{row.topic:<20} {row.support:>7} {row.precision:>9.3f} {row.recall:>6.3f}"
            f" {row.f1:>6.3f}"
        )
    lines.append(f"{'macro f1':<20} {'':>7} {'':>9} {'':>6} {report.macro_f1:>6.3f}")
    if report.languages:
        lines.append("")
        lines.append(
            f"{'lang':<20} {'posts':>7} {'labels':>7} {'precision':>9} {'recall':>6}"
            f" {'f1':>6} {'macro f1':>8}"
        )
        for lang in report.languages:
            row = lang.labels
            lines.append(
                f"{lang.lang:<20} {lang.posts:>7} {row.support:>7} {row.precision:>9.3f}"
                f" {row.recall:>6.3f} {row.f1:>6.3f} {lang.macro_f1:>8.3f}"
            )
    lines.append(
        f"off-topic posts with no topic: {report.no_topic_correct}/{report.no_topic_posts}"
    )
    if report.lang_total:
        lines.append(
            f"language accuracy: {report.lang_accuracy:.3f}"
            f" ({report.lang_correct}/{report.lang_total})"
        )
    return "\n".join(lines)
