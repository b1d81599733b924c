"""Finding 3 at send time: the connection goes to the address that was checked. A resolver that
answers a harmless address to the check and a loopback one to the connection (DNS rebinding),
or that fails, never gets a signed POST to the loopback receiver."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpcore
import pytest
import redis

from service.core.delivery import DeliveryJob, DeliveryStatus, parse_target
from service.core.targets import TargetPolicy
from tests.delivery.conftest import SECRET, ContextFactory, Scheduled, make_alert
from tests.delivery.receiver import WebhookReceiver
from workers.delivery.dispatch import process
from workers.delivery.pinning import PinnedBackend

_real_getaddrinfo = socket.getaddrinfo
PUBLIC = "127.0.0.2"  # plays a public address: the policy below lets it through
INTERNAL = "127.0.0.1"


def _answer(ip: str, port: Any) -> list[Any]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0)))]


class Resolver:
    """Answers names ending in ``.test`` from ``answers`` (one list per call, the last one
    repeated); an answer of None fails like an unknown name. IP literals resolve for real."""

    def __init__(self, *answers: list[str] | None) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".test"):
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.calls.append(name)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [entry for ip in answer for entry in _answer(ip, port)]


def _refuse_internal(address: Any, *_args: Any, **_kwargs: Any) -> str | None:
    """The address policy of these tests: 127.0.0.2 is public, every other loopback refused."""
    return None if str(address) == PUBLIC else "loopback address"


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, WebhookReceiver]]:
    internal = WebhookReceiver(secrets=[SECRET])
    await internal.start(host=INTERNAL)
    port = int(internal.url.rsplit(":", 1)[1].split("/")[0])
    public = WebhookReceiver(secrets=[SECRET])
    await public.start(host=PUBLIC, port=port)
    yield internal, public
    await public.stop()
    await internal.stop()


def _job(url: str) -> DeliveryJob:
    return DeliveryJob(make_alert(), parse_target({"webhook": {"url": url, "secret": SECRET}}))


def _port(receiver: WebhookReceiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1].split("/")[0])


def _patch(monkeypatch: pytest.MonkeyPatch, resolver: Callable[..., Any]) -> None:
    """The system resolver replaced (what every resolution in the process goes through), and
    the address check of the connection step replaced by ``_refuse_internal``."""
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    from workers.delivery import pinning

    monkeypatch.setattr(pinning, "address_refusal", _refuse_internal)


async def test_rebinding_resolver_cannot_reach_loopback(
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
) -> None:
    internal, public = receivers
    resolver = Resolver([PUBLIC], [INTERNAL])  # harmless first, loopback on every later call
    _patch(monkeypatch, resolver)
    context = make_context(schedule=Scheduled(), allow_loopback_targets=False)
    outcome = await process(context, _job(f"http://rebind.test:{_port(internal)}/hook"))
    assert internal.received == [], "a signed POST reached the loopback receiver"
    assert outcome.status == DeliveryStatus.SENT
    assert len(public.delivered) == 1 and public.received[0].headers["host"].startswith("rebind")


async def test_an_answer_holding_a_refused_address_is_refused(
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    internal, public = receivers
    _patch(monkeypatch, Resolver([PUBLIC, INTERNAL]))
    context = make_context(schedule=Scheduled(), allow_loopback_targets=False)
    outcome = await process(context, _job(f"http://mixed.test:{_port(internal)}/hook"))
    assert outcome.status == DeliveryStatus.DEAD
    assert internal.received == [] and public.received == []


async def test_failing_resolver_refuses(
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
) -> None:
    internal, _public = receivers
    resolver = Resolver(None, [INTERNAL])  # fails for the check, then answers loopback
    _patch(monkeypatch, resolver)
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, allow_loopback_targets=False, webhook_schedule=(30,))
    job = _job(f"http://flaky.test:{_port(internal)}/hook")
    outcome = await process(context, job)
    assert internal.received == [], "an unresolvable name was let through"
    assert outcome.status == DeliveryStatus.RETRY and "resolve" in outcome.detail
    assert [j.attempt for j, _ in scheduled.jobs] == [1]


class _RecordingStream(httpcore.AsyncNetworkStream):
    """A connection that records the TLS handshake it is asked for, then fails it (the
    ``timeout`` parameters are httpcore's interface)."""

    def __init__(self, seen: dict[str, Any]) -> None:
        self.seen = seen

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        return None

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        self.seen["sni"] = server_hostname
        raise httpcore.ConnectError("handshake recorded")


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.seen["connected_to"] = host
        return _RecordingStream(self.seen)

    async def sleep(self, seconds: float) -> None:
        return None


async def test_tls_keeps_the_name_for_sni_while_connecting_to_the_checked_address() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    recording = _RecordingBackend()
    backend = PinnedBackend(TargetPolicy(), resolver, inner=recording)
    pool = httpcore.AsyncConnectionPool(network_backend=backend)
    with pytest.raises(httpcore.ConnectError):
        await pool.request("POST", "https://hooks.example.org/x", content=b"{}")
    assert recording.seen == {"connected_to": "93.184.215.14", "sni": "hooks.example.org"}


async def test_redirects_are_not_followed(
    receiver: WebhookReceiver, make_context: ContextFactory
) -> None:
    receiver.status_ok = 307  # "go elsewhere": a failed attempt, never a second request
    scheduled = Scheduled()
    context = make_context(schedule=scheduled, webhook_schedule=(30,))
    outcome = await process(context, _job(receiver.url))
    assert outcome.status == DeliveryStatus.RETRY and outcome.detail == "HTTP 307"
    assert len(receiver.received) == 1
