"""Where a webhook may point: its URL, its host and every address it resolves to, as pure checks.

A webhook URL is decided when a subscription is created or imported (``check_webhook_url``):
only ``http``/``https``, no credentials, a port of 80, 443 or above 1023, and a host that is
neither a private, loopback, link-local, cloud-metadata nor unroutable address in any literal
spelling (decimal, octal and hex IPv4 such as ``2130706433`` or ``0x7f.1``, IPv4-mapped and
other IPv6 forms that embed an IPv4 address, ``0``, ``[::]``, trailing dots, full-width digits
that IDNA maps to ASCII), nor a name that only a local resolver answers (``localhost``, a name
without a dot, ``.internal``, ``.local``...). Names are not resolved here: the sender resolves
them at send time, checks every address with ``address_refusal`` and connects to the one it
checked. Loopback and private targets are opt-in (``TargetPolicy``), cloud metadata never.

Secrets are checked too (``check_secrets``): ``whsec_`` plus the base64 of 24 to 64 bytes (the
Standard Webhooks form), or a plain string of 16 to 256 printable characters that does not look
like an encrypted one (``enc:v1:``, ``service.core.secretbox``). No message here
ever contains the URL or a secret: a URL's query may hold a token.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.core.secretbox import SEALED_PREFIX

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Long enough for any real endpoint with a token in its query; a longer one is a mistake.
URL_MAX_LENGTH = 2048
# Ports below this are system services (ssh 22, smtp 25...); webhooks use 80, 443 or a high port.
PORT_MIN_UNPRIVILEGED = 1024
WEB_PORTS = frozenset({80, 443})
# A rotation keeps the old and the new secret; a handful covers overlapping rotations.
SECRETS_MAX = 5
# Standard Webhooks: a whsec_ key is 24 to 64 random bytes.
WHSEC_MIN_BYTES, WHSEC_MAX_BYTES = 24, 64
# A plain (non-whsec) secret is used as its UTF-8 bytes: shorter than this is guessable.
PLAIN_SECRET_MIN, PLAIN_SECRET_MAX = 16, 256

LOOPBACK = "loopback address"
PRIVATE = "private or link-local address"
METADATA = "cloud metadata address"
UNROUTABLE = "unroutable address"

# Instance metadata services: never a webhook target, whatever the policy (AWS/GCP/Azure/
# OpenStack 169.254.169.254, AWS over IPv6, Alibaba, Oracle).
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "instance-data"})
# Names that only a local resolver answers (RFC 6761, 6762, 8375 and common private suffixes).
_LOCAL_SUFFIXES = (
    ".local", ".internal", ".intranet", ".lan", ".home", ".corp", ".localdomain", ".home.arpa",
)  # fmt: skip
# 6to4 and the well-known NAT64 prefixes carry an IPv4 address inside an IPv6 one.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, yet Python calls it global
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux connects 0.x to the local host
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Characters WHATWG parsers and Python's urlsplit read differently (a backslash is a slash to
# one and a host character to the other); no real endpoint needs them.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")
# IDNA separators that are not ".": full-width, ideographic and half-width ideographic stops.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class TargetError(ValueError):
    """A target that may not be used; the message names the problem, never the URL or secret."""


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which addresses a webhook may reach besides public ones (both off by default)."""

    allow_private: bool = False
    allow_loopback: bool = False


STRICT = TargetPolicy()


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A checked URL: its scheme, its host in ASCII (an IP literal's canonical form) and port."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None  # set when the host is an IP literal


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, the deprecated IPv4-compatible form
        return ipaddress.IPv4Address(value)
    return None


def address_refusal(address: IPAddress | str, policy: TargetPolicy = STRICT) -> str | None:
    """Why an IP address may not be a webhook target, or None when it may."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return PRIVATE if not policy.allow_private else None
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_refusal(inner, policy)
    if ip in _METADATA_ADDRESSES:
        return METADATA
    if ip.is_loopback:
        return None if policy.allow_loopback else LOOPBACK
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip in _THIS_NETWORK):
        return UNROUTABLE
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return UNROUTABLE
    if ip.version == 6 and ip in _SITE_LOCAL:
        return None if policy.allow_private else PRIVATE
    if ip.is_link_local or ip.is_private or ip.is_reserved or not ip.is_global:
        return None if policy.allow_private else PRIVATE
    return None


def _ipv4_part(part: str) -> int | None:
    """One dotted part the way inet_aton (and WHATWG URL) read it: 0x hex, 0 octal, decimal."""
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        if digits == "":
            return 0
        return int(digits, 16) if all(c in "0123456789abcdefABCDEF" for c in digits) else None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part) if part.isascii() and part.isdigit() else None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any inet_aton spelling (``127.1``, ``0x7f.0.0.1``, ``2130706433``,
    ``0177.0.0.1``), or None when ``host`` is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(part == "" for part in parts):
        return None
    values = [_ipv4_part(part) for part in parts]
    if any(value is None for value in values):
        return None
    numbers = [int(value) for value in values if value is not None]
    last_room = 256 ** (5 - len(numbers))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= last_room:
        return None
    value = 0
    for n in numbers[:-1]:
        value = value * 256 + n
    value = value * last_room + numbers[-1]
    return ipaddress.IPv4Address(value)


def _ends_in_number(host: str) -> bool:
    """WHATWG's test: a host whose last label is numeric is meant as an IPv4 address."""
    last = host.rsplit(".", 1)[-1]
    return bool(last) and (
        (last.isascii() and last.isdigit())
        or (last[:2].lower() == "0x" and all(c in "0123456789abcdefABCDEF" for c in last[2:]))
    )


def ascii_host(raw: str) -> str:
    """A host name as ASCII, lower-case, without a trailing dot (IDNA for Unicode names, which
    also folds full-width digits and dots); TargetError when it is no valid host."""
    host = raw.translate(_DOTS)
    if not host.isascii():
        try:
            host = unicodedata.normalize("NFKC", host).encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            raise TargetError("the host is not a valid name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        raise TargetError("the host is not a valid name")
    return host


def host_refusal(host: str, policy: TargetPolicy = STRICT) -> tuple[str | None, IPAddress | None]:
    """Why a URL's host (as ``urlsplit`` gives it, brackets removed) may not be a target, and
    the IP address it spells when it is a literal. Raises TargetError for a malformed host."""
    if ":" in host:  # only an IPv6 literal holds a colon
        if "%" in host:
            raise TargetError("an IPv6 zone id is not allowed in a webhook URL")
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetError("the host is not a valid IPv6 address") from None
        return address_refusal(ip6, policy), ip6
    if "%" in host:
        raise TargetError("a percent-encoded host is not allowed in a webhook URL")
    name = ascii_host(host)
    if _ends_in_number(name):
        ip4 = parse_ipv4(name)
        if ip4 is None:
            raise TargetError("the host is neither a valid name nor a valid IPv4 address")
        return address_refusal(ip4, policy), ip4
    if not all(_LABEL_RE.fullmatch(label) for label in name.split(".")):
        raise TargetError("the host is not a valid name")
    if name in _METADATA_NAMES:
        return METADATA, None
    if name == "localhost" or name.endswith(".localhost"):
        return (None if policy.allow_loopback else LOOPBACK), None
    if "." not in name or name.endswith(_LOCAL_SUFFIXES):
        return (None if policy.allow_private else PRIVATE), None
    return None, None


def check_webhook_url(url: object, policy: TargetPolicy = STRICT) -> WebhookUrl:
    """Decide a webhook URL at subscription time; TargetError says why it is refused."""
    if not isinstance(url, str) or not url:
        raise TargetError("webhook url must be a string")
    if len(url) > URL_MAX_LENGTH:
        raise TargetError(f"webhook url is longer than {URL_MAX_LENGTH} characters")
    if _AMBIGUOUS.search(url):
        raise TargetError("webhook url holds whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetError("webhook url is malformed (host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise TargetError("webhook url must be http:// or https://")
    if "@" in parts.netloc:
        raise TargetError("credentials in a webhook url are not allowed: use the secret")
    if not parts.hostname:
        raise TargetError("webhook url has no host")
    if port is not None and port not in WEB_PORTS and not PORT_MIN_UNPRIVILEGED <= port <= 65535:
        raise TargetError(f"webhook port must be 80, 443 or {PORT_MIN_UNPRIVILEGED}-65535")
    refusal, address = host_refusal(parts.hostname, policy)
    if refusal is not None:
        raise TargetError(f"webhook host refused: {refusal}")
    host = str(address) if address is not None else ascii_host(parts.hostname)
    default = 443 if parts.scheme == "https" else 80
    return WebhookUrl(parts.scheme, host, port or default, address)


def check_secrets(secrets: object) -> tuple[str, ...]:
    """The secrets of a webhook, checked: one string or a list of up to SECRETS_MAX."""
    items = (secrets,) if isinstance(secrets, str) else secrets
    if not isinstance(items, list | tuple) or not items:
        raise TargetError("webhook needs a secret (whsec_... or a list while rotating)")
    if len(items) > SECRETS_MAX:
        raise TargetError(f"a webhook has at most {SECRETS_MAX} secrets")
    for number, secret in enumerate(items, 1):
        which = "secret" if len(items) == 1 else f"secret {number}"
        if not isinstance(secret, str):
            raise TargetError(f"{which} must be a string")
        if secret.startswith("whsec_"):
            try:
                key = base64.b64decode(secret[len("whsec_") :], validate=True)
            except (binascii.Error, ValueError):
                raise TargetError(f"{which}: whsec_ must be followed by base64") from None
            if not WHSEC_MIN_BYTES <= len(key) <= WHSEC_MAX_BYTES:
                raise TargetError(
                    f"{which}: a whsec_ key is {WHSEC_MIN_BYTES} to {WHSEC_MAX_BYTES} bytes"
                )
        elif secret.startswith(SEALED_PREFIX):
            raise TargetError(f"{which} may not start with {SEALED_PREFIX} (an encrypted one)")
        elif not (
            PLAIN_SECRET_MIN <= len(secret) <= PLAIN_SECRET_MAX
            and secret.isprintable()
            and not any(c.isspace() for c in secret)
        ):
            raise TargetError(
                f"{which} must be whsec_<base64> or {PLAIN_SECRET_MIN}-{PLAIN_SECRET_MAX} "
                "printable characters without spaces"
            )
    return tuple(items)
