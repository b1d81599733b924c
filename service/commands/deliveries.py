"""`tgwatch deliveries`: the dead-letter list — see it, redeliver it."""

from __future__ import annotations

import click


@click.group()
def deliveries() -> None:
    """Deliveries that used up their retries (dead letters): list and redeliver them."""


@deliveries.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table")
def list_dead(limit: int, fmt: str) -> None:
    """Show dead letters, oldest first: when, why, which alert to which target."""
    import json

    from service.commands.root import open_root
    from service.core.delivery import redact_url
    from service.store.deliveries import Ledger

    with open_root() as root:
        entries = Ledger(root.redis.client).dead_letters()[:limit]
    for entry in entries:
        job = entry.get("job") or {}
        alert = job.get("alert") or {}
        target = job.get("target") or {}
        hook = target.get("webhook")
        where = (f"webhook {redact_url(str(hook.get('url', '')))}" if isinstance(hook, dict)
                 else f"telegram {target.get('telegram')}")  # fmt: skip
        if fmt == "jsonl":
            record = {"at": entry.get("at"), "reason": entry.get("reason"),
                      "alert_id": alert.get("id"),
                      "subscription_id": alert.get("subscription_id"), "target": where}  # fmt: skip
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{entry.get('at')}  {alert.get('id')}  {where}  {entry.get('reason')}")
    if not entries and fmt == "table":
        click.echo("no dead letters", err=True)


@deliveries.command("redeliver")
@click.argument("alert_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Redeliver every dead letter.")
def redeliver_command(alert_id: str | None, everything: bool) -> None:
    """Redeliver the dead letters of ALERT_ID (or --all), with the same alert id."""
    from service.commands.root import fail, open_root
    from service.delivery_queue import deliveries_queue, redeliver
    from service.store.deliveries import Ledger

    if (alert_id is None) == (not everything):
        fail("give an ALERT_ID or --all", 2)
    with open_root() as root:
        client = root.redis.client
        count = redeliver(Ledger(client), deliveries_queue(client), alert_id)
    click.echo(f"redelivered {count} dead letter(s)")
    if alert_id is not None and count == 0:
        raise SystemExit(1)
