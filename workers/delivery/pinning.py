"""Webhook connections that go only to an address that was checked: DNS rebinding closed.

Checking a host's addresses and then letting the HTTP client resolve the name again leaves a
window: a name that answers a public address to the check and ``127.0.0.1`` to the client
reaches the loopback interface with a signed POST. Here the resolution *is* the connection:
``PinnedBackend`` is httpcore's network backend, so ``connect_tcp`` resolves the URL's host
once, refuses the whole answer when any address in it is refused (``service.core.targets``),
refuses when the name does not resolve, and connects to a checked address. The request keeps
its ``Host`` header, and TLS its SNI and certificate check, because httpcore hands ``start_tls``
the URL's host, never the address. ``pinned_client`` is the only client webhooks are sent with:
no proxy from the environment, no redirects followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from service.core.targets import IPAddress, TargetPolicy, address_refusal

# A name that takes longer than this to resolve is treated as one that does not resolve.
RESOLVE_TIMEOUT_SECONDS = 10.0
# Connections kept per sender: deliveries are one request each, to many endpoints.
MAX_CONNECTIONS = 100

Resolver = Callable[[str, int], Awaitable[list[str]]]


class TargetRefusedError(Exception):
    """The endpoint's host is, or resolves to, an address the policy refuses."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableError(Exception):
    """The endpoint's host did not resolve: nothing was sent."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, check every address, connect to a checked one."""

    def __init__(
        self,
        policy: TargetPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int, within: float | None = None) -> list[str]:
        """The checked addresses of ``host``; TargetRefusedError or UnresolvableError."""
        literal = _literal(host)
        if literal is not None:
            found = [host]
        else:
            try:
                found = await asyncio.wait_for(
                    self.resolver(host, port), within or RESOLVE_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise UnresolvableError(f"cannot resolve the host ({type(exc).__name__})") from None
            if not found:
                raise UnresolvableError("cannot resolve the host (no address)")
        for address in found:
            ip = _literal(address)
            refusal = "unreadable address" if ip is None else address_refusal(ip, self.policy)
            if refusal is not None:
                raise TargetRefusedError(refusal)
        return list(dict.fromkeys(found))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.addresses(host, port, timeout):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address
        assert failure is not None  # addresses() never returns an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        raise TargetRefusedError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a ``PinnedBackend`` (no proxy at all).

    httpx has no parameter for a network backend, so the pool it built is replaced by one
    built the same way with ours; the send-time tests (a rebinding and a failing resolver
    against a real loopback receiver) fail if this ever stops taking effect.
    """

    def __init__(self, policy: TargetPolicy, resolver: Resolver = system_resolver) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS // 5,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(policy, resolver),
        )


def pinned_client(
    policy: TargetPolicy, *, timeout: float, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """The HTTP client of webhook deliveries."""
    return httpx.AsyncClient(
        transport=PinnedTransport(policy, resolver),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
