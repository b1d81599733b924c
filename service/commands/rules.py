"""The rule-engine commands: `tgwatch backtest` and `tgwatch rules check|explain|load`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from service.commands.root import echo_rules_problems
from service.core.alerting import InMemoryMatchState, process
from service.core.model import Alert, Enrichment, WatchedEntity
from service.core.post import Post
from service.core.query import parser as q
from service.core.query.document import token_keys, word_key
from service.core.query.index import RuleIndex, compile_query, triggers
from service.core.rules import RulesError, RuleSet, load_rules
from service.core.text import is_cyrillic

EXCERPT_CONTEXT = 40  # characters shown either side of the first highlight in the table


def _load_or_exit(path: Path, *, as_imported: bool = False) -> RuleSet:
    """The rules file, or every problem printed and exit 1. ``as_imported`` checks it as an
    import would: its webhook targets under TGWATCH_DELIVERY_ALLOW_*_TARGETS and its regexes
    under TGWATCH_LIMIT_REGEX_MS (else only what a backtest or an explanation needs)."""
    try:
        if as_imported:
            from service.commands.root import read_settings

            settings = read_settings()
            return load_rules(
                path,
                targets=settings.delivery.target_policy(),
                regex_ms=settings.limits.regex_ms,
            )
        return load_rules(path, targets=None, regex_ms=None)
    except RulesError as exc:
        echo_rules_problems(exc, path)
        sys.exit(1)


def _enricher(ruleset: RuleSet) -> Callable[[Post], Enrichment]:
    """The enrichment the workers run (language, topics, entities), with the rules' watched
    entities; imported here because loading the detectors takes a moment."""
    from service.core.enrich import build_enricher

    return build_enricher(watched=ruleset.entities).enrich


def _record(post: Post, alert: Alert) -> dict[str, Any]:
    return {
        "update_id": post.update_id,
        "post": post.key,
        "subscription": alert.subscription_id,
        "alert": alert.suppressed is None,
        "suppressed": alert.suppressed,
        "duplicate_of": alert.duplicate_of,
        "highlights": [h.to_dict() for h in alert.highlights],
    }


def _excerpt(post: Post, alert: Alert) -> str:
    text = post.text
    if not alert.highlights:
        return " ".join(text.split())[: EXCERPT_CONTEXT * 2]
    first = alert.highlights[0]
    before = text[max(0, first.start - EXCERPT_CONTEXT) : first.start]
    after = text[first.end : first.end + EXCERPT_CONTEXT]
    lead = "…" if first.start > EXCERPT_CONTEXT else ""
    tail = "…" if first.end + EXCERPT_CONTEXT < len(text) else ""
    return " ".join(f"{lead}{before}[{first.text}]{after}{tail}".split())


@click.command("backtest")
@click.option(
    "--rules",
    "rules_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="rules file (YAML) with entities and subscriptions",
)
@click.option(
    "--format", "output", type=click.Choice(["table", "jsonl"]), default="table", show_default=True
)
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def backtest(rules_path: Path, output: str, inputs: Sequence[Path]) -> None:
    """Run the rules over saved posts (any input format) and print every match.

    Each (post version, subscription) match is one record: whether it alerts, or why it was
    suppressed (an edit of a post that already matched, or a duplicate of an earlier text).
    Records are printed as they are found (buffered), and nothing is kept of a post once it is
    matched but what the edit and duplicate rules need: memory does not grow with the posts.
    """
    from service.core.formats.detect import parse_file

    ruleset = _load_or_exit(rules_path)
    index = RuleIndex.build(ruleset)
    enrich = _enricher(ruleset)
    state = InMemoryMatchState(keep_stream=False)
    matches: Counter[str] = Counter()
    alerts: Counter[str] = Counter()
    posts = 0
    out = sys.stdout  # written to as is, buffered: not a click.echo (and an isatty) per line
    for path in inputs:
        result = parse_file(path)  # one file's posts at a time
        for rejected in result.rejected:
            click.echo(f"{path}: skipped item {rejected.index}: {rejected.reason}", err=True)
        for post in result.posts:
            posts += 1
            enrichment = enrich(post)
            for alert in process(post, index.match(post, enrichment), state, enrichment=enrichment):
                matches[alert.subscription_id] += 1
                if alert.suppressed is None:
                    alerts[alert.subscription_id] += 1
                if output == "jsonl":
                    out.write(json.dumps(_record(post, alert), ensure_ascii=False) + "\n")
                else:
                    out.write(_row(post, alert))
        del result
    if output == "table":
        _print_totals(out, ruleset, posts, matches, alerts)
    out.flush()


def _row(post: Post, alert: Alert) -> str:
    status = "alert" if alert.suppressed is None else alert.suppressed
    if alert.duplicate_of:
        status += f" of {alert.duplicate_of}"
    return f"{post.link}  {alert.subscription_id}  {status}\n    {_excerpt(post, alert)}\n"


def _print_totals(
    out: TextIO, ruleset: RuleSet, posts: int, matches: Counter[str], alerts: Counter[str]
) -> None:
    total = sum(matches.values())
    lines = ["", f"{posts} post versions, {total} matches, {sum(alerts.values())} alerts"]
    width = max([len("subscription"), *(len(sub.id) for sub in ruleset.subscriptions)])
    lines.append(f"{'subscription':<{width}}  matches  alerts")
    for sub in ruleset.subscriptions:
        paused = "  (paused)" if sub.paused else ""
        lines.append(f"{sub.id:<{width}}  {matches[sub.id]:>7}  {alerts[sub.id]:>6}{paused}")
    out.write("\n".join(lines) + "\n")


@click.group("rules")
def rules() -> None:
    """Check, explain and load subscription rules."""


@rules.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(path: Path) -> None:
    """Validate a rules file as an import would; every problem is printed with its line."""
    ruleset = _load_or_exit(path, as_imported=True)
    paused = sum(1 for sub in ruleset.subscriptions if sub.paused)
    click.echo(
        f"{path}: ok — {len(ruleset.subscriptions)} subscriptions ({paused} paused), "
        f"{len(ruleset.entities)} entities, version {ruleset.version}"
    )


@rules.command("explain")
@click.argument("query")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="rules file whose entities entity:<id> refers to",
)
def explain(query: str, rules_path: Path | None) -> None:
    """Print how QUERY parses: its tree, and the normalized terms and lemmas it matches."""
    try:
        tree = q.parse(query)
    except q.QueryError as exc:
        click.echo(query, err=True)
        click.echo(" " * exc.position + "^", err=True)
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    entities: dict[str, WatchedEntity] = {}
    if rules_path is not None:
        entities = _load_or_exit(rules_path).entity_map()
    click.echo("tree:")
    for line in q.render(tree, 1):
        click.echo(line)
    click.echo("terms:")
    for term, positive in q.terms(tree):
        click.echo(f"  {'+' if positive else '-'} {_explain_term(term, entities)}")
    found = triggers(compile_query(tree, entities))
    if found is None:
        click.echo("index: no term is required, so this rule is evaluated for every post")
    else:
        keys = ", ".join(sorted(f"{value}*" if kind == "p" else value for kind, value in found))
        click.echo(f"index: evaluated only for posts containing one of: {keys}")


def _explain_term(term: q.Term, entities: dict[str, WatchedEntity]) -> str:
    text = q.describe(term)
    if isinstance(term, q.Word) and is_cyrillic(term.norm):
        if term.exact:
            return f"{text} → exactly this form"
        key = word_key(term.norm)
        return f"{text} → lemma {key!r}: matches any form whose lemmas include it"
    if isinstance(term, q.Phrase):
        keys = [word_key(word, term.exact) for word in term.words]
        return f"{text} → consecutive tokens {keys}"
    if isinstance(term, q.Word):
        return f"{text} → this normalized form {token_keys(term.norm)[0]!r}"
    if isinstance(term, q.Field) and term.name == "entity":
        watched = entities.get(term.value)
        aliases = ", ".join(watched.aliases) if watched else "(unknown here: pass --rules)"
        return f"{text} → enrichment's entity id, or any alias as a phrase: {aliases}"
    return text


@rules.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(path: Path) -> None:
    """Make PATH the whole rule set in Redis: workers pick it up within ~2 s.

    The operator's subscriptions the file lacks are removed (never a subscriber's: those made
    in the bot or the API stay); those it names keep what the file does not say (owner, mode,
    mute). `tgwatch subscriptions import` adds and changes without removing.
    """
    from service.commands.root import open_root
    from service.store.rules import RuleStore
    from service.subscriptions_file import import_ruleset

    ruleset = _load_or_exit(path, as_imported=True)
    with open_root() as root:
        try:
            summary = import_ruleset(
                root.redis.client, ruleset, prune=True,
                policy=root.settings.delivery.target_policy(),
            )  # fmt: skip
        except ValueError as exc:
            click.echo(f"{path}: {exc}", err=True)
            raise SystemExit(1) from None
        version = RuleStore(root.redis.client).version()
    lines = summary.lines()
    lines.append(
        f"loaded {len(ruleset.subscriptions)} subscriptions and {len(ruleset.entities)} "
        f"entities (rules version {version})"
    )
    click.echo("\n".join(lines))
