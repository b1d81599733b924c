"""`tgwatch secrets rotate`: encrypt every stored webhook secret under the first key of
TGWATCH_SECRETS_KEY (see service/secrets_rotation.py and docs/security.md)."""

from __future__ import annotations

import sys

import click


@click.group("secrets")
def secrets() -> None:
    """Webhook secrets encrypted at rest (TGWATCH_SECRETS_KEY)."""


@secrets.command("rotate")
@click.option("--dry-run", is_flag=True, help="Count what would be encrypted; write nothing.")
def rotate(dry_run: bool) -> None:
    """Encrypt every stored webhook secret under the first key: plain ones, and ones encrypted
    under an older key (then that key can be dropped from TGWATCH_SECRETS_KEY)."""
    from service.commands.root import fail, open_root, read_settings
    from service.secrets_rotation import rotate_secrets

    settings = read_settings()
    box = settings.secret_box()
    if not box.enabled:
        fail("TGWATCH_SECRETS_KEY is not set: there is no key to encrypt with", 2)

    def progress(done: int, total: int) -> None:
        click.echo(f"checked {done}/{total} subscriptions", err=True)

    with open_root(settings) as root:
        summary = rotate_secrets(root.redis.client, box, dry_run=dry_run, progress=progress)
    for line in summary.lines(dry_run=dry_run):
        click.echo(line)
    if summary.failed:
        sys.exit(1)
