"""Account sessions on disk, as secrets: files of mode 0600 in a 0700 directory, encrypted at rest
when a passphrase is set (TGWATCH_MTPROTO_SESSION_KEY).

A session is everything needed to act as the account (its authorization key), so it is handled
as a ``SecretStr`` end to end and never logged. File layout: one line of header naming the format
(``tgwatch-session 1 plain`` or ``tgwatch-session 1 scrypt-fernet <salt>``), then the session
string or its Fernet token. The key is derived from the passphrase with scrypt and a per-file
salt. Writes go to a temporary file created 0600 and renamed over the old one, so a crash never
leaves a half-written or briefly world-readable session.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

HEADER = "tgwatch-session 1"
SUFFIX = ".session"
FILE_MODE = 0o600
DIR_MODE = 0o700
# scrypt cost: ~50 ms and 16 MiB per derivation, paid once per account start.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class SessionError(Exception):
    """A session cannot be stored or read; the message names the account, never the secret."""


def check_name(name: str) -> str:
    """An account name: 1-32 letters, digits, ``_`` or ``-`` (it names a file and Redis keys)."""
    if not _NAME_RE.fullmatch(name):
        raise SessionError(f"account name {name[:40]!r}: use 1-32 letters, digits, _ or -")
    return name


def _fernet(passphrase: SecretStr, salt: bytes) -> Fernet:
    try:
        from cryptography.fernet import Fernet
    except ImportError as exc:  # the mtproto extra is not installed
        raise SessionError(
            "encrypted sessions need the 'cryptography' package (pip install 'tgwatch[mtproto]')"
        ) from exc
    key = hashlib.scrypt(
        passphrase.get_secret_value().encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
        dklen=32,
    )  # fmt: skip
    return Fernet(base64.urlsafe_b64encode(key))


class SessionVault:
    """The stored sessions of a directory; ``key`` encrypts new writes and reads encrypted ones."""

    def __init__(self, directory: Path, key: SecretStr | None = None) -> None:
        self.directory = directory
        self.key = key

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}{SUFFIX}"

    def names(self) -> list[str]:
        """Accounts with a stored session, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            path.name.removesuffix(SUFFIX)
            for path in self.directory.glob(f"*{SUFFIX}")
            if _NAME_RE.fullmatch(path.name.removesuffix(SUFFIX))
        )

    def save(self, name: str, session: SecretStr) -> Path:
        """Store (or replace) an account's session; returns the file written."""
        path = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self.directory, DIR_MODE)
        secret = session.get_secret_value()
        if self.key is None:
            body = f"{HEADER} plain\n{secret}\n"
        else:
            salt = secrets.token_bytes(SALT_BYTES)
            token = _fernet(self.key, salt).encrypt(secret.encode()).decode()
            body = f"{HEADER} scrypt-fernet {salt.hex()}\n{token}\n"
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return path

    def load(self, name: str) -> SecretStr:
        """An account's session; SessionError when missing, readable by others, or undecryptable."""
        path = self.path(name)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise SessionError(
                f"account {name}: no session stored (tgwatch accounts add)"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SessionError(
                f"account {name}: session file is readable by others; chmod 600 {path.name}"
            )
        header, _, rest = path.read_text(encoding="utf-8").partition("\n")
        fields = header.split()
        if header.startswith(f"{HEADER} plain"):
            return SecretStr(rest.strip())
        if len(fields) == 4 and header.startswith(f"{HEADER} scrypt-fernet"):
            if self.key is None:
                raise SessionError(f"account {name}: session is encrypted; set "
                                   "TGWATCH_MTPROTO_SESSION_KEY")  # fmt: skip
            from cryptography.fernet import InvalidToken

            try:
                salt = bytes.fromhex(fields[3])
                plain = _fernet(self.key, salt).decrypt(rest.strip().encode())
            except (InvalidToken, ValueError):
                raise SessionError(f"account {name}: session does not decrypt with "
                                   "TGWATCH_MTPROTO_SESSION_KEY") from None  # fmt: skip
            return SecretStr(plain.decode())
        raise SessionError(f"account {name}: {path.name} is not a tgwatch session file")

    def remove(self, name: str) -> bool:
        """Delete an account's session; True when there was one."""
        path = self.path(name)
        if not path.exists():
            return False
        path.unlink()
        return True
