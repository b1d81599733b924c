"""Standard Webhooks signatures: sign an outgoing webhook, verify one as a receiver would.

The signed content is ``msg_id + "." + timestamp + "." + body`` and a signature is
``v1,<base64 HMAC-SHA256>``. A secret is given either in the ``whsec_<base64>`` form (the key
is the decoded base64 part) or raw (the key is its UTF-8 bytes). During a secret rotation a
sender signs with every current secret and sends the signatures space-separated; a receiver
accepts the message when any one of them matches one of its secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A webhook failed verification; the message says why and never quotes a secret."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded base64 of ``whsec_...``, else the raw bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("secret has the whsec_ prefix but is not valid base64") from None
    if not secret:
        raise SignatureError("empty secret")
    return secret.encode("utf-8")


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """One signature, ``v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``."""
    content = f"{msg_id}.{int(timestamp)}.".encode() + _as_bytes(body)
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` header value: one signature per secret, space-separated."""
    signatures = [sign(secret, msg_id, timestamp, body) for secret in secrets]
    if not signatures:
        raise SignatureError("no secret to sign with")
    return " ".join(signatures)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise SignatureError(f"missing {name} header")


def verify(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise SignatureError unless it is authentic and fresh.

    ``headers`` needs ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (any case).
    The timestamp must lie within ``tolerance`` seconds of ``now`` (replay protection).
    """
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    received = _header(headers, "webhook-signature").split()
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    offered = [
        value.partition(",")[2]
        for value in received
        if value.partition(",")[0] == SIGNATURE_VERSION
    ]
    for secret in candidates:
        expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
        if any(hmac.compare_digest(expected, value) for value in offered):
            return
    raise SignatureError("no matching signature")
