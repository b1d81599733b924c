"""The enrichment commands: `tgwatch classify`, `tgwatch topics train`, `tgwatch eval topics`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import click

from service.core.enrich import Enricher, build_enricher
from service.core.enrich.topics import MODES, Mode
from service.core.model import Enrichment, WatchedEntity
from service.core.post import Post

_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


def _watched_from(rules: Path | None) -> tuple[WatchedEntity, ...]:
    if rules is None:
        return ()
    from service.core.rules import RulesError, load_rules

    try:
        return load_rules(rules, targets=None, regex_ms=None).entities
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None


def _build(
    *,
    languages: str | None,
    taxonomy: Path | None,
    model: Path | None,
    mode: str | None,
    ner: bool,
    watched: tuple[WatchedEntity, ...] = (),
) -> Enricher:
    codes = [code for code in (languages or "").split(",") if code.strip()] or None
    # click.Choice(MODES) has already checked the value.
    topic_mode = cast("Mode | None", mode)
    try:
        return build_enricher(codes, taxonomy, model, ner, watched, topic_mode=topic_mode)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _read_posts(paths: tuple[Path, ...]) -> list[Post]:
    from service.core.formats.detect import parse_file
    from service.core.formats.result import FormatError

    posts: list[Post] = []
    for path in paths:
        try:
            result = parse_file(path)
        except FormatError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        if result.rejected:
            click.echo(f"{path}: {len(result.rejected)} item(s) rejected", err=True)
        posts.extend(result.posts)
    return posts


def classification_record(post: Post, enrichment: Enrichment) -> dict[str, Any]:
    """The JSON object `tgwatch classify --format jsonl` prints for one post version."""
    data = enrichment.to_dict()
    return {
        "update_id": post.update_id,
        "post": post.key,
        "lang": data["lang"],
        "topics": data["topics"],
        "entities": data["entities"],
    }


def _table_row(record: dict[str, Any]) -> str:
    topics = ",".join(f"{t['id']}:{t['score']:.2f}" for t in record["topics"]) or "-"
    entities = "; ".join(
        f"{e['type']}:{e.get('canonical') or e['text']}" + (f"[{e['id']}]" if "id" in e else "")
        for e in record["entities"]
    )
    return f"{record['post']:<28} {record['lang'] or '-':<4} {topics:<40} {entities or '-'}"


_COMMON_OPTIONS = [
    click.option("--languages", help="comma-separated ISO 639-1 codes (default ru,uk,en,es,fr,de)"),
    click.option("--taxonomy", type=_PATH, help="topics YAML (default: the shipped taxonomy)"),
    click.option(
        "--model", type=_PATH, help="topic model from `tgwatch topics train` (default: shipped)"
    ),
    click.option("--mode", type=click.Choice(MODES), help="cues, model or blend"),
]


def _common(func: Any) -> Any:
    for option in reversed(_COMMON_OPTIONS):
        func = option(func)
    return func


@click.command("classify")
@click.argument("inputs", nargs=-1, required=True, type=_PATH)
@click.option("--format", "output_format", type=click.Choice(["table", "jsonl"]), default="table")
@_common
@click.option("--ner/--no-ner", default=True, help="recognise PER/ORG/LOC (ru, en)")
@click.option("--rules", type=_PATH, help="rules file whose `entities:` are watched")
def classify(
    *,
    inputs: tuple[Path, ...],
    output_format: str,
    languages: str | None,
    taxonomy: Path | None,
    model: Path | None,
    mode: str | None,
    ner: bool,
    rules: Path | None,
) -> None:
    """Print the language, topics and entities of every post version in INPUT files."""
    enricher = _build(
        languages=languages,
        taxonomy=taxonomy,
        model=model,
        mode=mode,
        ner=ner,
        watched=_watched_from(rules),
    )
    posts = _read_posts(inputs)
    if output_format == "table":
        click.echo(f"{'post':<28} {'lang':<4} {'topics':<40} entities")
    for post in posts:
        record = classification_record(post, enricher.enrich(post))
        if output_format == "jsonl":
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(_table_row(record))


@click.group("topics")
def topics() -> None:
    """Topic classifier: train it from labelled posts."""


@topics.command("train")
@click.argument("labelled", type=_PATH)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("topics-model.json"),
    show_default=True,
    help="where to save the model (JSON)",
)
@click.option("--taxonomy", type=_PATH, help="whose cue scores the model weighs (default: shipped)")
@click.option("--no-cues", is_flag=True, help="learn from the words only, not the cue scores")
def train(labelled: Path, out: Path, taxonomy: Path | None, no_cues: bool) -> None:
    """Train a topic model from LABELLED JSON lines ({"text", "topics", "lang"?}).

    Every topic labelled in the file is learned (the taxonomy's first). The shipped model is
    this command run on service/data/eval/train.jsonl with the default taxonomy.
    """
    from service.core.enrich.topic_model import LabelledDataError, read_labelled
    from service.core.enrich.topic_training import train_model
    from service.core.enrich.topics import TaxonomyError, load_taxonomy

    try:
        posts = read_labelled(labelled)
        chosen = None if no_cues else load_taxonomy(taxonomy)
        known = chosen.ids if chosen is not None else ()
        labelled_ids = sorted({t for post in posts for t in post.topics} - set(known))
        model, skipped = train_model(posts, [*known, *labelled_ids], chosen)
    except (LabelledDataError, TaxonomyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    model.save(out)
    if skipped:
        click.echo(f"skipped (too few examples): {', '.join(skipped)}", err=True)
    click.echo(
        f"trained {len(model.topics)} topics on {len(posts)} posts"
        f" ({len(model.vocabulary)} word features) -> {out}"
    )


@click.group("eval")
def eval_cmd() -> None:
    """Measure enrichment against labelled posts."""


@eval_cmd.command("topics")
@click.argument("labelled", type=_PATH)
@_common
@click.option("--show-errors", is_flag=True, help="also list the posts predicted wrongly")
@click.option(
    "--cv",
    "folds",
    type=click.IntRange(min=2),
    help="cross-validate: train on all folds but one, predict that one, K times",
)
def eval_topics(
    *,
    labelled: Path,
    languages: str | None,
    taxonomy: Path | None,
    model: Path | None,
    mode: str | None,
    show_errors: bool,
    folds: int | None,
) -> None:
    """Per-topic and per-language precision, recall and F1 on LABELLED JSON lines.

    By default the posts are classified as the service does (detected language, default taxonomy
    and shipped model, blend mode); with --cv K, by models trained on the file itself.
    """
    from service.core.enrich.evaluation import evaluate, format_report
    from service.core.enrich.topic_model import LabelledDataError, read_labelled

    try:
        posts = read_labelled(labelled)
    except LabelledDataError as exc:
        raise click.ClickException(str(exc)) from None
    gold = [frozenset(post.topics) for post in posts]
    gold_langs = [p.lang for p in posts]
    if folds is not None:
        from service.core.enrich.topic_training import cross_validate
        from service.core.enrich.topics import TaxonomyError, load_taxonomy

        if model is not None or mode not in (None, "blend"):
            raise click.ClickException("--cv trains its own models in blend mode")
        try:
            topic_ids, predicted = cross_validate(posts, load_taxonomy(taxonomy), folds)
        except (TaxonomyError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        predicted_langs: list[str | None] = list(gold_langs)
        click.echo(f"cross-validation: {folds} folds of {len(posts)} posts (labelled languages)")
        report = evaluate(topic_ids, gold, predicted, gold_langs)
    else:
        enricher = _build(languages=languages, taxonomy=taxonomy, model=model, mode=mode, ner=False)
        predicted_langs = [enricher.detect_language(post.text) for post in posts]
        predicted = [
            frozenset(t.id for t in enricher.topics.classify(post.text, lang))
            for post, lang in zip(posts, predicted_langs, strict=True)
        ]
        click.echo(f"mode: {enricher.topics.mode}; {len(posts)} posts")
        report = evaluate(enricher.topics.topic_ids, gold, predicted, gold_langs, predicted_langs)
    click.echo(format_report(report))
    if show_errors:
        for post, want, got, lang in zip(posts, gold, predicted, predicted_langs, strict=True):
            if want != got or (post.lang is not None and post.lang != lang):
                click.echo(
                    f"- {post.lang}->{lang} want={sorted(want)} got={sorted(got)}: {post.text[:90]}"
                )
