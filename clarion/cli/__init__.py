"""``clarion``: serve, migrate, manage API keys (here), and the client commands that talk
to a running service through the Python client (``cli/client.py``: send, list, tail,
status).

Settings are built here, once, from the environment (``CLARION_*``) and passed down.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from typing import Annotated, Any

import typer

from clarion import gc_tuning
from clarion.cli import client
from clarion.cli.common import configure_logging, err, load_settings, run, with_services

app = typer.Typer(help="Clarion, a self-hosted notification service.", no_args_is_help=True)
api_key_app = typer.Typer(help="Manage server API keys.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
vapid_app = typer.Typer(help="Web Push (VAPID) keys.", no_args_is_help=True)
app.add_typer(vapid_app, name="vapid")
client.register(app)


def app_from_environment() -> Any:
    """The app of one ``serve --workers N`` process: each builds its own from the
    environment (uvicorn imports this by name in every worker process)."""
    from clarion.api import server_protocol
    from clarion.runtime import build_app

    settings = load_settings()
    server_protocol.configure(settings)  # this process's connections (server_protocol.py)
    return build_app(settings)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes sharing the port (CLARION_WORKERS)", min=1)
    ] = None,
) -> None:
    """Run the API, the WebSocket endpoint and an embedded worker."""
    import uvicorn

    from clarion.api import server_protocol
    from clarion.api.live_protocol import WS_PROTOCOL
    from clarion.runtime import build_app

    settings = load_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if workers is not None:
        settings.workers = workers
    if (
        settings.workers > 1
        and not settings.redis_url
        and settings.database_url.startswith("sqlite")
    ):
        # Live updates travel between processes over Redis or PostgreSQL NOTIFY; with
        # SQLite and no Redis each process would only reach its own sockets.
        err(
            "--workers above 1 needs CLARION_REDIS_URL (or PostgreSQL): live updates "
            "must reach every process"
        )
        raise typer.Exit(2)
    configure_logging(settings, "%(levelname)s %(name)s: %(message)s")

    async def bootstrap(services: Any) -> None:
        if not await services.auth.has_api_keys():
            _key_id, key = await services.auth.create_api_key("default")
            banner = "=" * 72
            err(
                f"{banner}\nNo API key existed, so one was created. It is shown only once:\n\n"
                f"    {key}\n\nUse it as: Authorization: Bearer {key}\n{banner}"
            )

    run(with_services(settings, bootstrap))
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "proxy_headers": False,
        # Compression costs CPU per socket per frame: a broadcast to N clients would
        # deflate the same frame N times.
        "ws_per_message_deflate": False,
        # uvicorn's protocol, keeping less per open socket (api/live_protocol.py).
        "ws": WS_PROTOCOL,
        # uvicorn's httptools protocol with limits on header size, header time and open
        # connections (api/server_protocol.py).
        "http": server_protocol.HTTP_PROTOCOL,
    }
    if settings.workers == 1:
        server_protocol.configure(settings)
        uvicorn.run(build_app(settings), **options)
        return
    # N processes accept on one socket (uvicorn's supervisor binds it and restarts a
    # process that dies); each has its own services, embedded worker included: claims,
    # batches and schedules are safe with any number of processes.
    os.environ["CLARION_HOST"], os.environ["CLARION_PORT"] = settings.host, str(settings.port)
    uvicorn.run(
        "clarion.cli:app_from_environment", factory=True, workers=settings.workers, **options
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Sends in flight at once")] = None,
) -> None:
    """Run delivery workers only (no API). Start as many as you like, on any machine that
    reaches the database; SIGTERM drains in-flight deliveries, then exits."""
    import signal

    settings = load_settings()
    if concurrency is not None:
        settings.worker_concurrency = concurrency
    configure_logging(settings, "%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def go() -> None:
        from clarion.runtime import Runtime
        from clarion.store.migrate import upgrade

        # Handlers first: a SIGTERM that arrives while the worker is still starting must
        # drain it like any other, not kill the process.
        stop_requested = False
        runtime: Runtime | None = None

        def stop() -> None:
            nonlocal stop_requested
            stop_requested = True
            if runtime is not None and runtime.worker is not None:
                runtime.worker.stop()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await upgrade(settings.database_url)
        runtime = Runtime(settings)
        try:
            # Wake-ups from API nodes arrive through the hub, started with the services.
            await runtime.services.start()
            worker = await runtime.start_worker()
            gc_tuning.settle()  # see clarion/gc_tuning.py
            if stop_requested:
                worker.stop()
            await runtime.stop_worker_when_done()
        finally:
            await runtime.close()

    run(go())


@vapid_app.command("generate")
def vapid_generate() -> None:
    """Print a new VAPID key pair: the private key for CLARION_VAPID_PRIVATE_KEY and the
    public key browsers pass as applicationServerKey."""
    from clarion.delivery.channels.push import generate_vapid_keys

    private, public = generate_vapid_keys()
    typer.echo(f"CLARION_VAPID_PRIVATE_KEY={private}")
    typer.echo(f"public key (applicationServerKey): {public}")


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from clarion.store.migrate import upgrade

    settings = load_settings()
    run(upgrade(settings.database_url))
    err("database is up to date")


@api_key_app.command("create")
def api_key_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="send, read or admin; repeatable (default: admin). See docs/api.md.",
        ),
    ] = None,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            help="The key's own limit, e.g. 600/minute (default: CLARION_RATE_LIMIT_API)",
        ),
    ] = None,
) -> None:
    """Create a key and print it alone on stdout (it is shown once)."""

    async def go(services: Any) -> str:
        key_id, key = await services.auth.create_api_key(name, scope or (), rate_limit)
        after = next(k for k in await services.auth.list_api_keys() if k["id"] == key_id)
        await _audit_key(services, "api_key.create", key_id, None, after)
        return str(key)

    typer.echo(run(with_services(load_settings(), go)))


async def _audit_key(services: Any, action: str, key_id: str, before: Any, after: Any) -> None:
    """Keys are managed from the command line: the audit log names the OS user."""
    await services.dashboard.audit(
        api_key_id=None,
        via="cli",
        action=action,
        target=f"api_key:{key_id}",
        before=before,
        after=after,
        actor=f"cli:{getpass.getuser()}",
    )


@api_key_app.command("list")
def api_key_list() -> None:
    """List keys (id, prefix, state, scopes, own rate limit, name); the keys themselves are
    never shown again."""

    async def go(services: Any) -> list[dict[str, Any]]:
        return list(await services.auth.list_api_keys())

    for row in run(with_services(load_settings(), go)):
        state = "revoked" if row["revoked_at"] else "active"
        scopes = ",".join(row["scopes"]) or "-"
        limit = row["rate_limit"] or "default"
        typer.echo(
            f"{row['id']}  {row['prefix']}…  {state:8}  {scopes:16}  {limit:14}  {row['name']}"
        )


@api_key_app.command("revoke")
def api_key_revoke(key: Annotated[str, typer.Argument(help="The key's id or prefix")]) -> None:
    """Revoke a key by id or prefix."""

    async def go(services: Any) -> None:
        keys = await services.auth.list_api_keys()
        live = [k for k in keys if k["revoked_at"] is None]
        before = next((k for k in live if key in (k["id"], k["prefix"])), None)
        await services.auth.revoke_api_key(key)
        if before is not None:
            keys = await services.auth.list_api_keys()
            after = next(k for k in keys if k["id"] == before["id"])
            await _audit_key(services, "api_key.revoke", before["id"], before, after)

    run(with_services(load_settings(), go))
    err("revoked")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
