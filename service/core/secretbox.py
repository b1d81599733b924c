"""Webhook secrets encrypted at rest: sealed before they are written to Redis, opened only to sign.

With TGWATCH_SECRETS_KEY set, every webhook secret tgwatch writes to Redis — the subscription
records of the rule set, delivery jobs on the RQ queues, dead letters — is stored as
``enc:v1:<Fernet token>`` instead of the secret; the webhook sender opens it just before it
signs. Unset, secrets are stored as they are (as before this module), and a stored value
without the prefix is always read as a plain secret, so a store written before the key was set
keeps working and is encrypted by its next write (or at once by ``tgwatch secrets rotate``).

The setting may hold several keys, comma-separated: the first one seals, every one opens (the
way ``MultiFernet`` rotates keys), so a new key is put first, ``tgwatch secrets rotate``
re-seals everything under it, and the old key is dropped afterwards. Each key is a passphrase
turned into a Fernet key with scrypt, as the MTProto sessions are
(``service.sources.mtproto.sessions``). The salt is fixed and names the purpose: a webhook
sender opens a secret per delivery, and a salt of its own per value would cost a ~50 ms
derivation each time; a key is derived once per process instead (and only when first used, so
a command that never touches a secret never pays for it). The key is meant to be random (see
docs/security.md), which is what makes a fixed salt harmless.

``cryptography`` is imported only when a key is set. Nothing here puts a secret or a key in an
error message: ``SecretUnavailableError`` says why a value cannot be opened, never what it is.

The process's box is installed once where the settings are read (``install``: the CLI's
composition root and the worker process), because stores and the delivery queue are built in
many places with only a Redis client, and RQ calls jobs with only their payload; a caller may
always pass a box of its own instead.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

SEALED_PREFIX = "enc:v1:"
KEY_MIN_LENGTH = 16
# scrypt cost as for the MTProto sessions: ~50 ms and 16 MiB, once per key and process.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT = b"tgwatch webhook secrets v1"
SETTING = "TGWATCH_SECRETS_KEY"


class SecretUnavailableError(Exception):
    """A sealed secret cannot be opened (no key set, or none of the keys opens it)."""


def is_sealed(value: object) -> bool:
    """Whether a stored value is a sealed secret (else it is a plain one)."""
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def split_keys(value: str) -> tuple[str, ...]:
    """The keys of the setting's value: comma-separated, blanks around them ignored."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _fernet(passphrase: str) -> Fernet:
    from cryptography.fernet import Fernet

    key = hashlib.scrypt(
        passphrase.encode(), salt=SALT, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Seals secrets under the first key and opens them with any; with no key it is the plain
    box: ``seal`` leaves secrets as they are and only plain values can be opened."""

    def __init__(self, keys: Sequence[SecretStr] = ()) -> None:
        self._keys = tuple(keys)
        self._fernets: tuple[Fernet, ...] | None = None

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> SecretBox:
        """The box of a TGWATCH_SECRETS_KEY value (None or blank: the plain box)."""
        if value is None:
            return cls()
        return cls([SecretStr(key) for key in split_keys(value.get_secret_value())])

    @property
    def enabled(self) -> bool:
        """A key is set: secrets are sealed when written."""
        return bool(self._keys)

    def __repr__(self) -> str:  # never show the keys
        return f"SecretBox(keys=<{len(self._keys)}>)"

    def _all(self) -> tuple[Fernet, ...]:
        if self._fernets is None:  # two threads deriving at once both get the same keys
            self._fernets = tuple(_fernet(key.get_secret_value()) for key in self._keys)
        return self._fernets

    def seal(self, secret: str) -> str:
        """A secret as it is stored: sealed under the first key (as it is when already sealed,
        or when no key is set)."""
        if not self._keys or is_sealed(secret):
            return secret
        token = self._all()[0].encrypt(secret.encode("utf-8", "surrogatepass"))
        return SEALED_PREFIX + token.decode("ascii")

    def open(self, value: str) -> str:
        """The secret a stored value holds; SecretUnavailableError when it is sealed and no key
        opens it."""
        if not is_sealed(value):
            return value
        if not self._keys:
            raise SecretUnavailableError(
                f"the webhook secret is encrypted and {SETTING} is not set"
            )
        from cryptography.fernet import InvalidToken, MultiFernet

        token = value[len(SEALED_PREFIX) :].encode("ascii", "replace")
        try:
            return MultiFernet(self._all()).decrypt(token).decode("utf-8", "surrogatepass")
        except InvalidToken:
            raise SecretUnavailableError(
                f"the webhook secret does not decrypt with any key of {SETTING}"
            ) from None

    def current(self, value: str) -> bool:
        """Whether a stored value is sealed under the first key (nothing to re-seal)."""
        if not self._keys or not is_sealed(value):
            return False
        from cryptography.fernet import InvalidToken

        try:
            self._all()[0].decrypt(value[len(SEALED_PREFIX) :].encode("ascii", "replace"))
        except InvalidToken:
            return False
        return True

    def reseal(self, value: str) -> str:
        """A stored value sealed under the first key: a plain one sealed, one sealed under an
        older key opened and sealed again; SecretUnavailableError when it cannot be opened."""
        if self.current(value):
            return value
        return self.seal(self.open(value))

    # --- targets and records -------------------------------------------------------------------
    def seal_target(self, target: Any) -> Any:
        """A ``notify:`` target with its webhook secrets sealed (anything else as it is)."""
        return map_secrets(target, self.seal) if self._keys else target

    def open_target(self, target: Any) -> Any:
        """A target with its webhook secrets opened (for the operator's own rules file)."""
        return map_secrets(target, self.open)

    def seal_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A rule-set record with the secrets of its ``notify`` and ``targets`` sealed; a secret
        in both lists is sealed once (one ciphertext per secret and record)."""
        return map_record(record, _once(self.seal)) if self._keys else record

    def reseal_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record with every secret sealed under the first key (``reseal``), each once."""
        return map_record(record, _once(self.reseal))


def _once(change: Callable[[str], str]) -> Callable[[str], str]:
    """``change``, remembering its answers: the same secret in a record's two target lists
    becomes the same stored value."""
    done: dict[str, str] = {}

    def changed(value: str) -> str:
        if value not in done:
            done[value] = change(value)
        return done[value]

    return changed


def map_secrets(target: Any, change: Callable[[str], str]) -> Any:
    """``target`` with ``change`` applied to each of its webhook secrets (a new dict when it has
    any; a malformed target is returned as it is: reading it is the reader's business)."""
    if not isinstance(target, dict):
        return target
    hook = target.get("webhook")
    if not isinstance(hook, dict):
        return target
    new_hook = dict(hook)
    for field in ("secret", "secrets"):
        value = hook.get(field)
        if isinstance(value, str):
            new_hook[field] = change(value)
        elif isinstance(value, list | tuple):
            new_hook[field] = [change(item) if isinstance(item, str) else item for item in value]
    return {**target, "webhook": new_hook}


def map_record(record: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """A subscription record with ``change`` applied to the secrets of its target lists."""
    changed = dict(record)
    for field in ("notify", "targets"):
        targets = record.get(field)
        if isinstance(targets, list | tuple) and any(
            isinstance(t, dict) and "webhook" in t for t in targets
        ):
            changed[field] = [map_secrets(target, change) for target in targets]
    return changed


PLAIN = SecretBox()
_installed: SecretBox = PLAIN


def install(box: SecretBox) -> None:
    """Make ``box`` the process's (where the settings are read, once)."""
    global _installed  # noqa: PLW0603 - the process's one box, like its one settings object
    _installed = box


def installed() -> SecretBox:
    """The process's box: the plain one until ``install`` is called."""
    return _installed
