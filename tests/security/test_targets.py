"""Finding 3: webhook URLs decided when a subscription is created — every literal spelling of a
private, loopback, link-local or metadata address refused, public targets accepted."""

from __future__ import annotations

import base64

import pytest

from service.core.delivery import validate_target
from service.core.targets import (
    LOOPBACK,
    METADATA,
    PRIVATE,
    UNROUTABLE,
    TargetError,
    TargetPolicy,
    address_refusal,
    check_secrets,
    check_webhook_url,
    parse_ipv4,
)

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
MALFORMED = "malformed"  # refused as not a valid URL or host, whatever the address

# (url, None when accepted, else the reason's fragment). Every row is decided without DNS.
URLS: list[tuple[str, str | None]] = [
    ("https://example.org/hook", None),
    ("http://example.org:8080/hook?token=abc", None),
    ("https://hooks.example.com:443/a/b#frag", None),
    ("https://8.8.8.8/hook", None),
    ("https://[2001:4860:4860::8888]/hook", None),
    ("https://münchen.example/hook", None),
    ("HTTPS://EXAMPLE.ORG/hook", None),
    ("https://example.org./hook", None),
    # loopback, in every spelling
    ("http://127.0.0.1/", LOOPBACK),
    ("http://127.1/", LOOPBACK),
    ("http://127.0.1/", LOOPBACK),
    ("http://2130706433/", LOOPBACK),
    ("http://0x7f000001/", LOOPBACK),
    ("http://0x7f.0.0.1/", LOOPBACK),
    ("http://0x7F.1/", LOOPBACK),
    ("http://0177.0.0.1/", LOOPBACK),
    ("http://017700000001/", LOOPBACK),
    ("http://127.0.0.1./", LOOPBACK),
    ("http://127.255.255.254:8080/", LOOPBACK),
    ("http://[::1]/", LOOPBACK),
    ("http://[0:0:0:0:0:0:0:1]/", LOOPBACK),
    ("http://[::ffff:127.0.0.1]/", LOOPBACK),
    ("http://[::ffff:7f00:1]/", LOOPBACK),
    ("http://[::127.0.0.1]/", LOOPBACK),
    ("http://[64:ff9b::127.0.0.1]/", LOOPBACK),
    ("http://[2002:7f00:1::]/", LOOPBACK),
    ("http://localhost/", LOOPBACK),
    ("http://LOCALHOST./", LOOPBACK),
    ("http://api.localhost/", LOOPBACK),
    ("http://１２７．０．０．１/", LOOPBACK),
    ("http://127。0。0。1/", LOOPBACK),
    # unspecified: Linux connects these to the local host
    ("http://0/", UNROUTABLE),
    ("http://0.0.0.0/", UNROUTABLE),
    ("http://0x0/", UNROUTABLE),
    ("http://[::]/", UNROUTABLE),
    ("http://0.1.2.3/", UNROUTABLE),
    ("http://224.0.0.1/", UNROUTABLE),
    ("http://255.255.255.255/", UNROUTABLE),
    # cloud metadata, never allowed
    ("http://169.254.169.254/latest/meta-data/", METADATA),
    ("http://2852039166/", METADATA),
    ("http://0xa9fea9fe/", METADATA),
    ("http://0251.0376.0251.0376/", METADATA),
    ("http://169.254.43518/", METADATA),
    ("http://[::ffff:169.254.169.254]/", METADATA),
    ("http://[::ffff:a9fe:a9fe]/", METADATA),
    ("http://[fd00:ec2::254]/", METADATA),
    ("http://metadata.google.internal/computeMetadata/v1/", METADATA),
    ("http://metadata/", METADATA),
    ("http://100.100.100.200/", METADATA),
    # private, link-local, shared and reserved space
    ("http://10.0.0.1/", PRIVATE),
    ("http://012.0.0.1/", PRIVATE),
    ("http://167772161/", PRIVATE),
    ("http://172.16.0.1/", PRIVATE),
    ("http://192.168.1.1/", PRIVATE),
    ("http://0xc0.0xa8.1.1/", PRIVATE),
    ("http://169.254.1.1/", PRIVATE),
    ("http://100.64.0.1/", PRIVATE),
    ("http://192.0.2.1/", PRIVATE),
    ("http://198.18.0.1/", PRIVATE),
    ("http://240.0.0.1/", PRIVATE),
    ("http://[fe80::1]/", PRIVATE),
    ("http://[fd12:3456::1]/", PRIVATE),
    ("http://[fec0::1]/", PRIVATE),
    ("http://[::ffff:10.0.0.1]/", PRIVATE),
    ("http://[2001:db8::1]/", PRIVATE),
    ("http://intranet/", PRIVATE),
    ("http://redis:6379/", PRIVATE),
    ("http://printer.local/", PRIVATE),
    ("http://db.internal/", PRIVATE),
    ("http://nas.home.arpa/", PRIVATE),
    # not URLs a webhook may have
    ("ftp://example.org/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://example.org/", "http:// or https://"),
    ("//example.org/hook", "http:// or https://"),
    ("https:///hook", "no host"),
    ("https://user:pass@example.org/", "credentials"),
    ("https://token@example.org/", "credentials"),
    ("http://127.0.0.1:80@example.org/", "credentials"),
    ("http://example.org\\@127.0.0.1/", "backslash"),
    ("http://exa mple.org/", "whitespace"),
    ("http://example.org/\nHost: x", "whitespace"),
    ("http://%31%32%37.0.0.1/", "percent-encoded"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[::1/", MALFORMED),
    ("http://example.org:99999/", MALFORMED),
    ("http://example.org:0/", "port"),
    ("http://example.org:22/", "port"),
    ("http://example.org:6/", "port"),
    ("http://1.2.3.4.5/", "IPv4"),
    ("http://256.1.1.1/", "IPv4"),
    ("http://0x/", UNROUTABLE),
    ("http://exa_mple..org/", "valid name"),
    ("http://-bad-.org/", "valid name"),
    ("https://example.org/" + "a" * 3000, "longer than"),
]


@pytest.mark.parametrize(("url", "expected"), URLS, ids=[u[:60] for u, _ in URLS])
def test_url_decided_at_subscription_time(url: str, expected: str | None) -> None:
    target = {"webhook": {"url": url, "secret": SECRET}}
    if expected is None:
        checked = check_webhook_url(url)
        assert checked.port in (80, 443, 8080)
        assert validate_target(target) == target
        return
    with pytest.raises(TargetError) as caught:
        check_webhook_url(url)
    message = str(caught.value)
    if expected != MALFORMED:
        assert expected in message, message
    # The message never carries the URL: its query or userinfo may hold a token.
    assert "pass" not in message and "token" not in message and url not in message
    with pytest.raises(ValueError):
        validate_target(target)


def test_the_table_is_large_and_covers_every_kind() -> None:
    assert len(URLS) >= 40
    reasons = {expected for _, expected in URLS}
    assert {None, LOOPBACK, PRIVATE, METADATA, UNROUTABLE} <= reasons


@pytest.mark.parametrize(
    ("url", "policy", "refused"),
    [
        ("http://127.0.0.1:8080/", TargetPolicy(allow_loopback=True), False),
        ("http://localhost:8080/", TargetPolicy(allow_loopback=True), False),
        ("http://[::ffff:127.0.0.1]:8080/", TargetPolicy(allow_loopback=True), False),
        ("http://127.0.0.1:8080/", TargetPolicy(allow_private=True), True),
        ("http://10.0.0.1/", TargetPolicy(allow_private=True), False),
        ("http://intranet/", TargetPolicy(allow_private=True), False),
        ("http://10.0.0.1/", TargetPolicy(allow_loopback=True), True),
        # Metadata and unspecified addresses stay refused whatever the settings say.
        ("http://169.254.169.254/", TargetPolicy(True, True), True),
        ("http://metadata.google.internal/", TargetPolicy(True, True), True),
        ("http://0.0.0.0:8080/", TargetPolicy(True, True), True),
        ("http://[::]:8080/", TargetPolicy(True, True), True),
    ],
)
def test_private_and_loopback_are_opt_in(url: str, policy: TargetPolicy, refused: bool) -> None:
    if refused:
        with pytest.raises(TargetError):
            check_webhook_url(url, policy)
    else:
        check_webhook_url(url, policy)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("10.0x10.0377", "10.16.0.255"),
        ("1.2.3.4", "1.2.3.4"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_ipv4_spellings_read_as_inet_aton_does(spelling: str, address: str) -> None:
    parsed = parse_ipv4(spelling)
    assert parsed is not None and str(parsed) == address
    import socket

    assert socket.inet_ntoa(socket.inet_aton(spelling)) == address  # what a resolver would do


@pytest.mark.parametrize("spelling", ["4294967296", "1.2.3.256", "08.1.1.1", "0xg.1", "1..2", ""])
def test_not_ipv4(spelling: str) -> None:
    assert parse_ipv4(spelling) is None


def test_resolved_address_policy() -> None:
    assert address_refusal("93.184.215.14") is None
    assert address_refusal("::ffff:127.0.0.1") == LOOPBACK
    assert address_refusal("fe80::1%eth0") == PRIVATE
    assert address_refusal("fe80::1%eth0", TargetPolicy(allow_private=True)) is None


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        (SECRET, True),
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), True),
        ([SECRET, "a-plain-secret-of-25-chars"], True),
        ("whsec_" + base64.b64encode(b"short").decode(), False),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), False),
        ("whsec_not base64!", False),
        ("short", False),
        ("sixteen chars!!!", False),  # a space
        ("", False),
        ([], False),
        ([SECRET] * 6, False),
        (None, False),
        (123, False),
        ("x" * 257, False),
    ],
)
def test_secrets(secret: object, ok: bool) -> None:
    if ok:
        check_secrets(secret)
        return
    with pytest.raises(TargetError) as caught:
        check_secrets(secret)
    if isinstance(secret, str) and len(secret) > 6:
        assert secret not in str(caught.value) and secret[6:] not in str(caught.value)
