"""`tgwatch accounts add|list|remove` through click's runner, with a fake Telegram login."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from pydantic import SecretStr
from structlog.testing import capture_logs

from service.cli import cli
from service.commands.accounts import Factories
from service.config import MtprotoSettings
from service.sources.mtproto.client import (
    AccountInfo,
    FloodWaitError,
    LoginFailedError,
    MtprotoClient,
    PasswordNeededError,
)
from service.sources.mtproto.sessions import SessionVault
from service.store.accounts import AccountStore, list_accounts

PHONE, CODE, PASSWORD = "+447700900123", "24680", "hunter2-but-longer"
SESSION = "1BVtsOKABu-the-session-string-is-a-secret-0123456789"


class FakeLogin:
    """Telegram's login as the interface shows it: a code, then maybe a password."""

    def __init__(self, *, password: str | None = None, fail_send: Exception | None = None) -> None:
        self.password = password
        self.fail_send = fail_send
        self.signed_in = False
        self.closed = False

    async def send_code(self, phone: str) -> None:
        if self.fail_send is not None:
            raise self.fail_send
        assert phone == PHONE

    async def sign_in(self, phone: str, code: str) -> AccountInfo:
        if code != CODE:
            raise LoginFailedError("code_invalid")
        if self.password is not None:
            raise PasswordNeededError("two-step verification is on")
        self.signed_in = True
        return AccountInfo(777, "@watcher")

    async def sign_in_password(self, password: str) -> AccountInfo:
        if password != self.password:
            raise LoginFailedError("password_invalid")
        self.signed_in = True
        return AccountInfo(777, "@watcher")

    def session(self) -> SecretStr:
        return SecretStr(SESSION if self.signed_in else "")

    async def close(self) -> None:
        self.closed = True


class LoggingOut:
    def __init__(self) -> None:
        self.logged_out: list[str] = []

    def __call__(self, settings: MtprotoSettings, session: SecretStr) -> MtprotoClient:
        outer = self

        class Client:
            async def log_out(self) -> None:
                outer.logged_out.append(session.get_secret_value())

        return Client()  # type: ignore[return-value]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("TGWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("TGWATCH_MTPROTO_API_ID", "12345")
    monkeypatch.setenv("TGWATCH_MTPROTO_API_HASH", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TGWATCH_MTPROTO_SESSION_DIR", str(tmp_path / "sessions"))
    return tmp_path / "sessions"


def invoke(args: list[str], login: FakeLogin | None = None, text: str = "", **more: object):  # type: ignore[no-untyped-def]
    factories = Factories(login=lambda _settings: login) if login else Factories(**more)  # type: ignore[arg-type]
    with capture_logs() as logs:
        result = CliRunner().invoke(cli, ["accounts", *args], input=text, obj=factories)
    return result, logs


def test_add_logs_in_with_a_password_and_stores_the_session_as_a_secret(
    env: Path, redis_client: redis.Redis
) -> None:
    login = FakeLogin(password=PASSWORD)
    result, logs = invoke(["add", "main"], login, f"{PHONE}\n{CODE}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "account main added: logged in as @watcher" in result.output
    path = env / "main.session"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SessionVault(env).load("main").get_secret_value() == SESSION
    for secret in (SESSION, CODE, PASSWORD):
        assert secret not in result.output
        assert secret not in json.dumps(logs, default=str)
    (record,) = list_accounts(redis_client)
    assert (record.name, record.state, record.user_id, record.display) == (
        "main",
        "active",
        777,
        "@watcher",
    )
    assert login.closed


def test_add_encrypts_when_a_key_is_set(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGWATCH_MTPROTO_SESSION_KEY", "a passphrase from the environment")
    result, _ = invoke(["add", "main", "--phone", PHONE], FakeLogin(), f"{CODE}\n")
    assert result.exit_code == 0, result.output
    assert "encrypted" in result.output
    assert SESSION not in (env / "main.session").read_text()


def test_a_refused_code_adds_nothing(env: Path, redis_client: redis.Redis) -> None:
    result, _ = invoke(["add", "main"], FakeLogin(), f"{PHONE}\n00000\n")
    assert result.exit_code == 1
    assert "Telegram refused the login: code_invalid" in result.output
    assert not (env / "main.session").exists()
    assert list_accounts(redis_client) == []


def test_a_flood_wait_on_login_says_how_long(env: Path) -> None:
    login = FakeLogin(fail_send=FloodWaitError(3600, "send_code"))
    result, _ = invoke(["add", "main"], login, f"{PHONE}\n")
    assert result.exit_code == 1
    assert "wait 3600 s" in result.output


def test_add_needs_app_credentials_and_a_sane_name(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = invoke(["add", "../x"], FakeLogin(), "")
    assert result.exit_code == 2 and "letters, digits" in result.output
    monkeypatch.delenv("TGWATCH_MTPROTO_API_HASH")
    result, _ = invoke(["add", "main"], FakeLogin(), "")
    assert result.exit_code == 1 and "TGWATCH_MTPROTO_API_HASH" in result.output


def test_add_does_not_overwrite_without_replace(env: Path) -> None:
    assert invoke(["add", "main"], FakeLogin(), f"{PHONE}\n{CODE}\n")[0].exit_code == 0
    result, _ = invoke(["add", "main"], FakeLogin(), f"{PHONE}\n{CODE}\n")
    assert result.exit_code == 1 and "--replace" in result.output
    assert invoke(["add", "main", "--replace"], FakeLogin(), f"{PHONE}\n{CODE}\n")[0].exit_code == 0


def test_list_shows_state_channels_and_flood_waits(env: Path, redis_url: str) -> None:
    assert invoke(["add", "main"], FakeLogin(), f"{PHONE}\n{CODE}\n")[0].exit_code == 0
    assert invoke(["add", "spare"], FakeLogin(), f"{PHONE}\n{CODE}\n")[0].exit_code == 0

    async def a_listener_runs_them() -> None:
        store = AccountStore.from_url(redis_url)
        try:
            await store.acquire_account("main", "proc", 30)
            await store.acquire_channel("mfa_russia", "main", "proc", 30, cap=5)
            await store.update("main", connected=True, flood_until=9_999_999_999.0,
                               flood_seconds=120.0, flood_operation="resolve")  # fmt: skip
            await store.mark_unusable("spare", "banned", "account unusable: banned")
        finally:
            await store.aclose()

    asyncio.run(a_listener_runs_them())
    result, _ = invoke(["list"])
    assert result.exit_code == 0, result.output
    main, spare = result.output.splitlines()
    assert "connected" in main and "channels    1" in main and "flood wait" in main
    assert "banned" in spare
    rows = json.loads(invoke(["list", "--format", "json"])[0].output)
    assert [(r["name"], r["state"], r["channels"], r["session_here"]) for r in rows] == [
        ("main", "active", 1, True), ("spare", "banned", 0, True)
    ]  # fmt: skip


def test_remove_logs_out_deletes_the_session_and_frees_the_channels(
    env: Path, redis_client: redis.Redis
) -> None:
    assert invoke(["add", "main"], FakeLogin(), f"{PHONE}\n{CODE}\n")[0].exit_code == 0
    logging_out = LoggingOut()
    result, _ = invoke(["remove", "main", "--yes"], client=logging_out)
    assert result.exit_code == 0, result.output
    assert logging_out.logged_out == [SESSION]
    assert not (env / "main.session").exists()
    assert list_accounts(redis_client) == []
    assert SESSION not in result.output
