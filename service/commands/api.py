"""`tgwatch api` serves the HTTP API; `tgwatch apikeys create|list|revoke` manages its keys."""

from __future__ import annotations

import click


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 in a container).")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /v1/openapi.json) until Ctrl-C / SIGTERM."""
    from contextlib import AsyncExitStack

    import structlog
    from aiohttp import web

    from service.api.http import build_app
    from service.commands.root import fail, open_root
    from service.metrics import Metrics
    from service.runtime import serve_ops

    log = structlog.get_logger(__name__)
    with open_root() as root:
        app = build_app(
            root.redis.client,
            root.settings.channels,
            policy=root.settings.delivery.target_policy(),
            limits=root.settings.limits,
        )
        stack = AsyncExitStack()

        async def ops_up(_app: web.Application) -> None:
            await serve_ops(root.settings, root.redis.client, Metrics(),
                            root.settings.metrics_port, stack)  # fmt: skip

        async def ops_down(_app: web.Application) -> None:
            await stack.aclose()

        app.on_startup.append(ops_up)
        app.on_cleanup.append(ops_down)
        log.info("api_starting", host=host, port=port)
        try:
            web.run_app(app, host=host, port=port, print=None, access_log=None)
        except OSError as exc:  # the address is taken or not ours: one line, exit 1
            fail(f"cannot serve the API on {host}:{port}: {exc.strerror or type(exc).__name__}")


@click.group("apikeys")
def apikeys() -> None:
    """Create, list and revoke API keys (stored hashed)."""


@apikeys.command("create")
@click.argument("name")
@click.option("--owner", help="Subscriber whose subscriptions the key manages (default api:NAME).")
@click.option("--admin", is_flag=True, help="See every subscription; change channels.")
def create_key(name: str, owner: str | None, admin: bool) -> None:
    """Create a key called NAME and print it once: it cannot be shown again."""
    from service.commands.root import fail, open_root
    from service.store.apikeys import ApiKeyStore
    from service.store.subscribers import SubscriberStore, api_subscriber

    if not name.strip() or not name.isprintable() or len(name) > 100:
        fail("an API key needs a name: up to 100 printable characters")
    with open_root() as root:
        store = ApiKeyStore(root.redis.client)
        owner = owner or api_subscriber(name.strip())
        SubscriberStore(root.redis.client).ensure_subscriber(owner, "api")
        key, record = store.create(name, owner, admin)
    click.echo(key)
    click.echo(
        f"key id {record.id}, owner {record.owner}{', admin' if admin else ''}: "
        "store it now, it is not shown again",
        err=True,
    )


@apikeys.command("list")
def list_keys() -> None:
    """List keys (id, name, owner, admin); never the keys themselves."""
    from service.commands.root import open_root
    from service.store.apikeys import ApiKeyStore

    with open_root() as root:
        for key in ApiKeyStore(root.redis.client).all():
            click.echo(f"{key.id}  {key.name}  {key.owner}{'  admin' if key.admin else ''}")


@apikeys.command("revoke")
@click.argument("key_id_or_name")
def revoke_key(key_id_or_name: str) -> None:
    """Revoke a key by its id, or every key with that name."""
    from service.commands.root import open_root
    from service.store.apikeys import ApiKeyStore

    with open_root() as root:
        revoked = ApiKeyStore(root.redis.client).revoke(key_id_or_name)
    if not revoked:
        click.echo(f"no key {key_id_or_name}", err=True)
        raise SystemExit(1)
    for key in revoked:
        click.echo(f"revoked {key.id} ({key.name})")
