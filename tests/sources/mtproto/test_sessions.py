"""Stored sessions are secrets: mode 0600 in a 0700 directory, encrypted with a key when set,
refused when others can read them, never in an error message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.sources.mtproto.sessions import SessionError, SessionVault, check_name

SECRET = "1BVtsOKABu2Yxhd0q7h-abcdefghijklmnopqrstuvwxyz0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_plain_session_is_written_0600_in_a_0700_directory(tmp_path: Path) -> None:
    vault = SessionVault(tmp_path / "sessions")
    path = vault.save("main", SecretStr(SECRET))
    assert mode(path) == 0o600
    assert mode(tmp_path / "sessions") == 0o700
    assert vault.load("main").get_secret_value() == SECRET
    assert vault.names() == ["main"]
    assert [p.name for p in (tmp_path / "sessions").iterdir()] == ["main.session"]


def test_an_encrypted_session_holds_no_plain_secret(tmp_path: Path) -> None:
    vault = SessionVault(tmp_path, SecretStr("correct horse battery staple"))
    path = vault.save("main", SecretStr(SECRET))
    assert SECRET not in path.read_text()
    assert SECRET[:12] not in path.read_text()
    assert vault.load("main").get_secret_value() == SECRET
    again = vault.save("main", SecretStr(SECRET))  # a new salt each time
    assert again.read_text() != ""


def test_a_wrong_or_missing_key_is_a_clear_error_without_the_secret(tmp_path: Path) -> None:
    SessionVault(tmp_path, SecretStr("right key")).save("main", SecretStr(SECRET))
    with pytest.raises(SessionError, match="does not decrypt") as wrong:
        SessionVault(tmp_path, SecretStr("wrong key")).load("main")
    with pytest.raises(SessionError, match="TGWATCH_MTPROTO_SESSION_KEY") as missing:
        SessionVault(tmp_path).load("main")
    for error in (wrong, missing):
        assert SECRET not in str(error.value) and "right key" not in str(error.value)


def test_a_session_others_can_read_is_refused(tmp_path: Path) -> None:
    vault = SessionVault(tmp_path)
    path = vault.save("main", SecretStr(SECRET))
    os.chmod(path, 0o644)
    with pytest.raises(SessionError, match="chmod 600"):
        vault.load("main")


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    vault = SessionVault(tmp_path)
    with pytest.raises(SessionError, match="accounts add"):
        vault.load("nobody")
    foreign = tmp_path / "odd.session"
    foreign.write_text("sqlite or something\n")
    os.chmod(foreign, 0o600)
    with pytest.raises(SessionError, match="not a tgwatch session"):
        vault.load("odd")
    assert vault.remove("odd") and not vault.remove("odd")


@pytest.mark.parametrize("name", ["", "../etc", "a b", "x" * 33, "-lead", "tab\tname"])
def test_account_names_that_could_escape_or_break_keys_are_refused(name: str) -> None:
    with pytest.raises(SessionError):
        check_name(name)
