"""Standard Webhooks signatures: known vectors, secret forms, rotation, verification."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.core.signing import SignatureError, secret_key, sign, signature_header, verify

MSG_ID = "al_0123456789abcdef01234567"
TIMESTAMP = 1_700_000_000
BODY = b'{"schema":"tgwatch.alert.v1","id":"al_0123456789abcdef01234567"}'


def _expected(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The signature computed independently of the module under test."""
    mac = hmac.new(key, msg_id.encode() + b"." + str(timestamp).encode() + b"." + body,
                   hashlib.sha256)  # fmt: skip
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_spec_example_vector() -> None:
    # The example published with the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("whsec_" + base64.b64encode(b"sixteen byte key").decode(), b"sixteen byte key"),
        ("whsec_" + base64.b64encode(bytes(range(32))).decode(), bytes(range(32))),
        ("plain-secret", b"plain-secret"),
        ("пароль", "пароль".encode()),
    ],
)
def test_sign_matches_independent_hmac(secret: str, key: bytes) -> None:
    assert secret_key(secret) == key
    assert sign(secret, MSG_ID, TIMESTAMP, BODY) == _expected(key, MSG_ID, TIMESTAMP, BODY)
    assert sign(secret, MSG_ID, TIMESTAMP, BODY.decode()) == sign(secret, MSG_ID, TIMESTAMP, BODY)


def test_bad_whsec_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(SignatureError) as info:
        secret_key("whsec_not*base64!")
    assert "not*base64" not in str(info.value)
    with pytest.raises(SignatureError):
        secret_key("")


def _headers(signature: str, timestamp: int = TIMESTAMP) -> dict[str, str]:
    return {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": signature}  # fmt: skip


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    old, new = "whsec_" + base64.b64encode(b"old key").decode(), "new raw secret"
    header = signature_header([old, new], MSG_ID, TIMESTAMP, BODY)
    parts = header.split(" ")
    assert parts == [_expected(b"old key", MSG_ID, TIMESTAMP, BODY),
                     _expected(b"new raw secret", MSG_ID, TIMESTAMP, BODY)]  # fmt: skip
    verify(old, _headers(header), BODY, now=TIMESTAMP)
    verify(new, _headers(header), BODY, now=TIMESTAMP)
    verify(["unrelated", new], _headers(header), BODY, now=TIMESTAMP)
    with pytest.raises(SignatureError, match="no matching signature"):
        verify("unrelated", _headers(header), BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, b: (h, b + b" "), "no matching signature"),
        (lambda h, b: ({**h, "Webhook-Id": "al_other"}, b), "no matching signature"),
        (lambda h, b: ({**h, "Webhook-Timestamp": str(TIMESTAMP + 1)}, b), "no matching"),
        (lambda h, b: ({**h, "Webhook-Timestamp": str(TIMESTAMP + 301)}, b), "tolerance"),
        (lambda h, b: ({**h, "Webhook-Timestamp": "soon"}, b), "not an integer"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Id"}, b), "missing"),
        (
            lambda h, b: ({**h, "Webhook-Signature": "v2," + h["Webhook-Signature"][3:]}, b),
            "no matching",
        ),
    ],
)
def test_verify_rejects_tampering(mutate: object, message: str) -> None:
    headers = _headers(sign("s3cret", MSG_ID, TIMESTAMP, BODY))
    headers, body = mutate(headers, BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        verify("s3cret", headers, body, now=TIMESTAMP)


def test_verify_tolerance_is_configurable() -> None:
    headers = _headers(sign("s3cret", MSG_ID, TIMESTAMP, BODY))
    verify("s3cret", headers, BODY, now=TIMESTAMP + 299)
    with pytest.raises(SignatureError):
        verify("s3cret", headers, BODY, now=TIMESTAMP + 61, tolerance=60)
