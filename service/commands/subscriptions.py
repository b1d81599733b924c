"""`tgwatch subscriptions import|export`: subscriptions with their targets as a rules file."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("subscriptions")
def subscriptions() -> None:
    """Import or export subscriptions (with where their alerts go) as a rules file."""


@subscriptions.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Remove stored subscriptions the file lacks.")
def import_command(path: Path, prune: bool) -> None:
    """Load PATH (idempotent) and print what was added, changed, unchanged, removed."""
    from service.commands.root import echo_rules_problems, open_root, read_settings
    from service.core.rules import RulesError, load_rules
    from service.subscriptions_file import import_ruleset

    settings = read_settings()
    policy = settings.delivery.target_policy()
    try:
        ruleset = load_rules(path, targets=policy, regex_ms=settings.limits.regex_ms)
    except RulesError as exc:
        echo_rules_problems(exc, path)
        sys.exit(1)
    with open_root(settings) as root:
        try:
            summary = import_ruleset(root.redis.client, ruleset, prune=prune, policy=policy)
        except ValueError as exc:
            click.echo(f"{path}: {exc}", err=True)
            sys.exit(1)
    for line in summary.lines():
        click.echo(line)


@subscriptions.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")  # fmt: skip
def export_command(output: Path | None) -> None:
    """Write the stored entities and subscriptions (with notify targets) as YAML."""
    from service.commands.root import fail, open_root
    from service.subscriptions_file import export_yaml

    with open_root() as root:
        try:
            text = export_yaml(root.redis.client)
        except ValueError as exc:  # a secret that does not decrypt: nothing is written
            fail(str(exc))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
