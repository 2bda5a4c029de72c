"""``clarion``: serve, migrate, manage API keys, send from the shell.

Settings are built here, once, from the environment (``CLARION_*``) and passed down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Annotated, Any

import typer

from clarion import gc_tuning
from clarion.config import Settings

app = typer.Typer(help="Clarion, a self-hosted notification service.", no_args_is_help=True)
api_key_app = typer.Typer(help="Manage server API keys.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
vapid_app = typer.Typer(help="Web Push (VAPID) keys.", no_args_is_help=True)
app.add_typer(vapid_app, name="vapid")


def _settings() -> Settings:
    return Settings()


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _run(coro: Any) -> Any:
    from clarion.errors import ClarionError

    try:
        return asyncio.run(coro)
    except ClarionError as exc:
        _err(f"error: {exc.code}: {exc.message}")
        raise typer.Exit(2) from exc


async def _with_services(settings: Settings, fn: Any) -> Any:
    from clarion.services.container import Services
    from clarion.store.migrate import upgrade

    await upgrade(settings.database_url)
    services = Services(settings)
    try:
        return await fn(services)
    finally:
        await services.close()


def app_from_environment() -> Any:
    """The app of one ``serve --workers N`` process: each builds its own from the
    environment (uvicorn imports this by name in every worker process)."""
    from clarion.runtime import build_app

    return build_app(_settings())


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

    from clarion.api.live_protocol import WS_PROTOCOL
    from clarion.runtime import build_app

    settings = _settings()
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
        _err(
            "--workers above 1 needs CLARION_REDIS_URL (or PostgreSQL): live updates "
            "must reach every process"
        )
        raise typer.Exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )

    async def bootstrap(services: Any) -> None:
        if not await services.auth.has_api_keys():
            _key_id, key = await services.auth.create_api_key("default")
            banner = "=" * 72
            _err(
                f"{banner}\nNo API key existed, so one was created. It is shown only once:\n\n"
                f"    {key}\n\nUse it as: Authorization: Bearer {key}\n{banner}"
            )

    _run(_with_services(settings, bootstrap))
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
    }
    if settings.workers == 1:
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

    settings = _settings()
    if concurrency is not None:
        settings.worker_concurrency = concurrency
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

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

    _run(go())


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

    settings = _settings()
    _run(upgrade(settings.database_url))
    _err("database is up to date")


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
        _key_id, key = await services.auth.create_api_key(name, scope or (), rate_limit)
        return str(key)

    typer.echo(_run(_with_services(_settings(), go)))


@api_key_app.command("list")
def api_key_list() -> None:
    """List keys (id, prefix, state, scopes, own rate limit, name); the keys themselves are
    never shown again."""

    async def go(services: Any) -> list[dict[str, Any]]:
        return list(await services.auth.list_api_keys())

    for row in _run(_with_services(_settings(), go)):
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
        await services.auth.revoke_api_key(key)

    _run(_with_services(_settings(), go))
    _err("revoked")


@app.command()
def send(
    user: Annotated[list[str], typer.Option("--user", help="Recipient user_id (repeatable)")],
    title: Annotated[str, typer.Option("--title")],
    message: Annotated[str, typer.Option("--message")] = "",
    type_: Annotated[str, typer.Option("--type")] = "message",
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Repeatable")] = None,
    priority: Annotated[str, typer.Option("--priority")] = "normal",
) -> None:
    """Send a notification directly through the service (no HTTP needed)."""
    from clarion.domain.send_command import SendCommand
    from clarion.domain.types import ChannelName, Priority

    try:
        cmd = SendCommand(
            user_ids=tuple(user),
            type=type_,
            title=title,
            message=message,
            priority=Priority(priority),
            channels=tuple(ChannelName(c) for c in (channel or ["in_app"])),
        )
    except ValueError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc

    async def go(services: Any) -> Any:
        return (await services.sending.send(cmd)).body

    typer.echo(json.dumps(_run(_with_services(_settings(), go))))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
