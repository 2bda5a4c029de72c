"""The commands that use a running Clarion through its Python client: ``send``, ``list``,
``tail``, ``status``. They reach the server at ``--url``/``CLARION_URL`` with
``--api-key``/``CLARION_API_KEY``, so a send reaches open live connections in every mode.
``--offline`` (send, list, status) works on the database of ``CLARION_DATABASE_URL``
instead, without a server; ``--json`` prints what the API answered, for scripts.

Exit codes: 0 done, 1 the server could not be reached, 2 refused (the error's code and
message on stderr)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clarion.cli.common import err, load_settings, run, with_services

if TYPE_CHECKING:
    from clarion_client import Client

Url = Annotated[
    str | None,
    typer.Option("--url", envvar="CLARION_URL", help="The server (default http://127.0.0.1:8000)"),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="CLARION_API_KEY", help="A server API key")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
Offline = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Use the database (CLARION_DATABASE_URL) directly, without a server; open live "
        "connections of a server on SQLite without Redis do not hear of it",
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command("list")(list_notifications)
    app.command()(tail)
    app.command()(status)


@contextlib.contextmanager
def _client(url: str | None, api_key: str | None) -> Iterator[Client]:
    """A client, and the CLI's way out of its errors (exit 1 unreachable, 2 refused)."""
    from clarion_client import APIConnectionError, ClarionError, Client

    try:
        with Client(url, api_key) as client:
            yield client
    except APIConnectionError as exc:
        err(f"error: cannot reach {url or 'the server'}: {exc.message}")
        raise typer.Exit(1) from exc
    except ClarionError as exc:
        err(f"error: {exc.code}: {exc.message}")
        if exc.details:
            err(json.dumps(exc.details))
        raise typer.Exit(2) from exc


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def send(
    user: Annotated[list[str], typer.Option("--user", help="Recipient user_id (repeatable)")],
    title: Annotated[str, typer.Option("--title")],
    message: Annotated[str, typer.Option("--message")] = "",
    type_: Annotated[str, typer.Option("--type")] = "message",
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Repeatable")] = None,
    priority: Annotated[str, typer.Option("--priority")] = "normal",
    data: Annotated[str | None, typer.Option("--data", help="A JSON object")] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Send later: an ISO 8601 time (naive means local time)"),
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    url: Url = None,
    api_key: ApiKey = None,
    offline: Offline = False,
    json_out: JsonOut = False,
) -> None:
    """Send a notification to one or more users (now, or --at a time)."""
    try:
        extra = json.loads(data) if data is not None else None
        if extra is not None and not isinstance(extra, dict):
            raise ValueError("--data must be a JSON object")
        when = None if at is None else datetime.fromisoformat(at)
    except ValueError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from exc
    scheduled_for = None if when is None else when if when.tzinfo else when.astimezone()
    fields: dict[str, Any] = {
        "type": type_,
        "title": title,
        "message": message,
        "priority": priority,
        "channels": channel or ["in_app"],
        "data": extra,
        "scheduled_for": scheduled_for,
    }
    if offline:
        answer = _send_offline(user, fields)
    else:
        with _client(url, api_key) as client:
            recipients: dict[str, Any] = (
                {"user_id": user[0]} if len(user) == 1 else {"user_ids": user}
            )
            sent = client.notifications.send(
                **recipients, **fields, idempotency_key=idempotency_key
            )
            answer = sent.model_dump(exclude_none=True)
    if json_out:
        _echo_json(answer)
        return
    held = answer.get("scheduled") or answer.get("batched")
    what = f"ids {answer['ids']}" if answer.get("ids") else f"held {held}"
    typer.echo(f"accepted {answer['accepted']}: {what}")


def _send_offline(users: list[str], fields: dict[str, Any]) -> dict[str, Any]:
    from clarion.domain.send_command import SendCommand
    from clarion.domain.types import ChannelName, Priority

    try:
        cmd = SendCommand(
            user_ids=tuple(users),
            type=fields["type"],
            title=fields["title"],
            message=fields["message"],
            priority=Priority(fields["priority"]),
            channels=tuple(ChannelName(c) for c in fields["channels"]),
            data=fields["data"] or {},
            scheduled_for=fields["scheduled_for"],
        )
    except ValueError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from exc

    async def go(services: Any) -> dict[str, Any]:
        return dict((await services.sending.send(cmd)).body)

    answer: dict[str, Any] = run(with_services(load_settings(), go))
    return answer


def list_notifications(
    user: Annotated[str, typer.Option("--user", help="Whose inbox")],
    status_: Annotated[str, typer.Option("--status", help="unread, read or all")] = "all",
    type_: Annotated[str | None, typer.Option("--type")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first", min=1)] = 20,
    url: Url = None,
    api_key: ApiKey = None,
    offline: Offline = False,
    json_out: JsonOut = False,
) -> None:
    """A user's notifications, newest first."""
    if offline:
        items = _list_offline(user, status_, type_, limit)
    else:
        with _client(url, api_key) as client:
            pager = client.notifications.list(
                user_id=user, status=status_, type=type_, limit=min(limit, 100)
            )
            items = [n.model_dump() for n in pager.to_list(limit=limit)]
    if json_out:
        _echo_json(items)
        return
    for n in items:
        typer.echo(
            f"{n['id']:>8}  {n['status']:6}  {n['created_at'][:19]}  {n['type']}  {n['title']}"
        )


def _list_offline(user: str, status_: str, type_: str | None, limit: int) -> list[dict[str, Any]]:
    async def go(services: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < limit:
            page = await services.inbox.page(
                user, status=status_, type_=type_, limit=min(limit - len(items), 100), cursor=cursor
            )
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return items

    items: list[dict[str, Any]] = run(with_services(load_settings(), go))
    return items


def tail(
    user: Annotated[str, typer.Option("--user", help="Whose inbox to follow")],
    cursor: Annotated[
        int | None, typer.Option("--cursor", help="Resume after this notification id")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    json_out: JsonOut = False,
) -> None:
    """Follow a user's notifications live, as they arrive (Ctrl-C stops). Resumes by
    itself after a lost connection; --cursor replays what came after that id first."""
    from clarion_client import AsyncClient, ClarionError

    async def follow() -> None:
        async with AsyncClient(url, api_key) as client:

            async def token() -> str:
                return (await client.users.create_token(user)).token

            async with client.live(await token(), cursor=cursor, renew_token=token) as stream:
                async for event in stream:
                    if json_out:
                        if event.type.startswith("notification."):
                            typer.echo(event.model_dump_json(exclude_none=True))
                    elif event.type == "notification.created" and event.notification:
                        n = event.notification
                        typer.echo(f"{n.id:>8}  {n.created_at[:19]}  {n.type}  {n.title}")
                    elif event.type == "notification.updated":
                        typer.echo(f"{event.id or '':>8}  {event.change}")

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    except ClarionError as exc:
        err(f"error: {exc.code or exc.status}: {exc.message}")
        raise typer.Exit(1 if exc.status is None else 2) from exc


def status(
    url: Url = None,
    api_key: ApiKey = None,
    offline: Offline = False,
    json_out: JsonOut = False,
) -> None:
    """The service's status: database, Redis, broker, live connections, outbox."""
    if offline:

        async def go(services: Any) -> dict[str, Any]:
            return dict(await services.system_status())

        answer: dict[str, Any] = run(with_services(load_settings(), go))
    else:
        with _client(url, api_key) as client:
            answer = client.system.status().model_dump()
    if json_out:
        _echo_json(answer)
        return
    typer.echo(f"status: {answer['status']}" + "".join(f"  ({r})" for r in answer["reasons"]))
    database = answer.get("database") or {}
    typer.echo(f"database: {database.get('backend')} {database.get('status')}")
    redis = answer.get("redis")
    typer.echo("redis: " + ("not configured" if redis is None else json.dumps(redis)))
    typer.echo(f"broker: {answer['broker'].get('active_transport')}")
    typer.echo(f"live connections: {answer['connections'].get('total')}")
    typer.echo("outbox: " + ", ".join(f"{k} {v}" for k, v in answer["outbox"].items()))
