"""`tgwatch accounts add|list|remove`: the user accounts the MTProto source reads channels with.

``add`` logs an account in interactively (phone number, the code Telegram sends, the two-step
password when the account has one) and stores its session as a secret (see
``sources.mtproto.sessions``); nothing typed and no session is ever printed or logged. Only user
accounts log in here: a bot token is never accepted by this source. Telethon is imported only by
the command that talks to Telegram, through the factories in ``Factories`` (tests give fakes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from pydantic import SecretStr

from service.config import MtprotoSettings, Settings
from service.sources.mtproto.client import (
    AccountInfo,
    DisconnectedError,
    FloodWaitError,
    LoginClient,
    LoginFailedError,
    MtprotoClient,
    MtprotoError,
    PasswordNeededError,
)
from service.sources.mtproto.sessions import SessionError, SessionVault, check_name


def _telethon_login(settings: MtprotoSettings) -> LoginClient:
    from service.sources.mtproto.telethon_client import TelethonLogin

    assert settings.api_id is not None and settings.api_hash is not None
    return TelethonLogin(settings.api_id, settings.api_hash)


def _telethon_client(settings: MtprotoSettings, session: SecretStr) -> MtprotoClient:
    from service.sources.mtproto.telethon_client import TelethonClient

    assert settings.api_id is not None and settings.api_hash is not None
    return TelethonClient(session, settings.api_id, settings.api_hash)


@dataclass
class Factories:
    """How the commands reach Telegram (``ctx.obj`` may carry others, as the tests do)."""

    login: Callable[[MtprotoSettings], LoginClient] = _telethon_login
    client: Callable[[MtprotoSettings, SecretStr], MtprotoClient] = _telethon_client


def _factories(ctx: click.Context) -> Factories:
    found = ctx.find_object(Factories)
    return found if found is not None else Factories()


def _settings(*, credentials: bool) -> Settings:
    """The process's settings, read once (a bad value: one line, exit 2)."""
    from service.commands.root import read_settings

    settings = read_settings()
    if credentials and not settings.mtproto.configured:
        raise click.ClickException(
            "set TGWATCH_MTPROTO_API_ID and TGWATCH_MTPROTO_API_HASH (an app of your own, from "
            "https://my.telegram.org) first"
        )
    return settings


def _name(name: str) -> str:
    try:
        return check_name(name)
    except SessionError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, FloodWaitError):
        return f"Telegram asks to wait {exc.seconds:.0f} s before trying again"
    if isinstance(exc, DisconnectedError):
        return "cannot reach Telegram (network)"
    if isinstance(exc, LoginFailedError):
        return f"Telegram refused the login: {exc.reason}"
    return str(exc)


@click.group("accounts")
def accounts() -> None:
    """User accounts of the MTProto source (real-time reading of channels you do not own).

    Needs TGWATCH_MTPROTO_API_ID and TGWATCH_MTPROTO_API_HASH. Sessions are stored under
    TGWATCH_MTPROTO_SESSION_DIR (mode 0600; encrypted when TGWATCH_MTPROTO_SESSION_KEY is set).
    """


@accounts.command("add")
@click.argument("name")
@click.option("--phone", help="The account's phone number (asked for when not given).")
@click.option("--replace", is_flag=True, help="Log in again over a stored session of NAME.")
@click.pass_context
def add(ctx: click.Context, name: str, phone: str | None, replace: bool) -> None:
    """Log account NAME in (phone, code, two-step password) and store its session."""
    name = _name(name)
    root_settings = _settings(credentials=True)
    settings = root_settings.mtproto
    vault = SessionVault(settings.session_dir, settings.session_key)
    if name in vault.names() and not replace:
        raise click.ClickException(f"account {name} exists; use --replace to log in again")
    number = phone or click.prompt("Phone number, international format (+44...)")
    login = _factories(ctx).login(settings)

    async def go() -> tuple[AccountInfo, SecretStr]:
        try:
            await login.send_code(number)
            code = click.prompt("The code Telegram sent you (in the Telegram app)", hide_input=True)
            try:
                info = await login.sign_in(number, code)
            except PasswordNeededError:
                password = click.prompt("Two-step verification password", hide_input=True)
                info = await login.sign_in_password(password)
            return info, login.session()
        finally:
            await login.close()

    try:
        info, session = asyncio.run(go())
    except MtprotoError as exc:
        raise click.ClickException(f"account {name} not added: {_why(exc)}") from None
    path = vault.save(name, session)
    from service.commands.root import open_root
    from service.store.accounts import register_account

    with open_root(root_settings) as root:
        register_account(root.redis.client, name, info.user_id, info.display)
    how = "encrypted, mode 0600" if settings.session_key else "mode 0600"
    click.echo(f"account {name} added: logged in as {info.display}; session in {path} ({how})")


def _ago(now: float, when: float | None) -> str:
    return "-" if when is None else f"{max(0.0, now - when):.0f}s ago"


@accounts.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_command(fmt: str) -> None:
    """Each account: state, whether a listener runs it, its channels and flood waits."""
    from service.commands.root import open_root
    from service.store.accounts import list_accounts

    root_settings = _settings(credentials=False)
    settings = root_settings.mtproto
    stored = set(SessionVault(settings.session_dir, settings.session_key).names())
    with open_root(root_settings) as root:
        records = {record.name: record for record in list_accounts(root.redis.client)}
    now = time.time()
    rows: list[dict[str, Any]] = []
    for name in sorted(set(records) | stored):
        record = records.get(name)
        row: dict[str, Any] = (
            record.to_dict() if record is not None else {"name": name, "state": "unregistered"}
        )
        row["session_here"] = name in stored
        row["flood_wait_left"] = record.flood_left(now) if record is not None else 0.0
        rows.append(row)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("no accounts: add one with `tgwatch accounts add NAME`")
        return
    for row in rows:
        state = row["state"] + (f" ({row['reason']})" if row.get("reason") else "")
        running = "connected" if row.get("connected") else "running" if row.get("running") else "-"
        flood = f"  flood wait {row['flood_wait_left']:.0f}s" if row["flood_wait_left"] else ""
        click.echo(
            f"{row['name']:<16} {state:<24} {running:<10} channels {row.get('channels', 0):>4}  "
            f"last update {_ago(now, row.get('last_update'))}{flood}  "
            f"{row.get('display') or ''}{'' if row['session_here'] else '  (no session here)'}"
        )


@accounts.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--logout/--no-logout", default=True, show_default=True,
              help="End the session at Telegram too (a copy of it stops working).")  # fmt: skip
@click.pass_context
def remove(ctx: click.Context, name: str, yes: bool, logout: bool) -> None:
    """Forget account NAME: its session, its record, its channels (others take them)."""
    from service.commands.root import open_root
    from service.store.accounts import remove_account

    name = _name(name)
    root_settings = _settings(credentials=logout)
    settings = root_settings.mtproto
    vault = SessionVault(settings.session_dir, settings.session_key)
    if not yes:
        click.confirm(f"Remove account {name}?", abort=True)
    if logout and name in vault.names():
        try:
            client = _factories(ctx).client(settings, vault.load(name))
            asyncio.run(client.log_out())
        except (MtprotoError, SessionError) as exc:
            click.echo(f"warning: could not log {name} out at Telegram: {_why(exc)}", err=True)
    removed = vault.remove(name)
    with open_root(root_settings) as root:
        freed = remove_account(root.redis.client, name)
    where = "session deleted" if removed else "no session here"
    click.echo(f"account {name} removed ({where}; {freed} channel(s) handed to other accounts)")
