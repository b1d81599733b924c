"""API keys for the HTTP API, stored hashed: a key is shown once, at creation, and never kept.

A key reads ``tgw_<key id>_<secret>``. The key id finds the record (hash ``API_KEYS_KEY``: key id
→ JSON ``{name, owner, admin, sha256, created_at}``), then the SHA-256 of the whole key is
compared in constant time, so neither the lookup nor the comparison leaks the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from service import constants

KEY_PREFIX = "tgw_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    owner: str
    admin: bool = False
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def create(self, name: str, owner: str, admin: bool = False) -> tuple[str, ApiKey]:
        """A new key: returns (the key — shown once —, its record)."""
        if not name.strip():
            raise ValueError("an API key needs a name")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(constants.API_KEY_BYTES)}"
        record = ApiKey(key_id, name.strip(), owner, admin, time.time())
        stored = {**record.to_dict(), "sha256": _digest(key)}
        self.client.hset(constants.API_KEYS_KEY, key_id, json.dumps(stored))
        return key, record

    def verify(self, key: str) -> ApiKey | None:
        """The record of a presented key, or None when it is unknown, revoked or wrong."""
        if not key.startswith(KEY_PREFIX):
            return None
        key_id, sep, _secret = key[len(KEY_PREFIX) :].partition("_")
        if not sep or not key_id:
            return None
        raw = self.client.hget(constants.API_KEYS_KEY, key_id)
        if raw is None:
            return None
        data = json.loads(raw)
        if not hmac.compare_digest(str(data.get("sha256", "")), _digest(key)):
            return None
        return _record(data)

    def all(self) -> list[ApiKey]:
        raw = self.client.hgetall(constants.API_KEYS_KEY)
        return sorted(
            (_record(json.loads(value)) for value in raw.values()), key=lambda k: (k.name, k.id)
        )

    def revoke(self, key_id_or_name: str) -> list[ApiKey]:
        """Revoke by key id, or every key of that name; returns what was revoked."""
        found = [k for k in self.all() if key_id_or_name in (k.id, k.name)]
        if found:
            self.client.hdel(constants.API_KEYS_KEY, *[k.id for k in found])
        return found


def _record(data: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=str(data["id"]),
        name=str(data["name"]),
        owner=str(data["owner"]),
        admin=bool(data.get("admin", False)),
        created_at=float(data.get("created_at") or 0.0),
    )
