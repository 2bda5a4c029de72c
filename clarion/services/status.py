"""What ``system/status`` reports: the database, Redis, the broker in use, live
connections per node and the outbox backlog, folded into ok / degraded / down."""

from __future__ import annotations

import asyncio
from typing import Any

from clarion.errors import StorageError
from clarion.hub.hub import Hub
from clarion.store import deliveries as delivery_store
from clarion.store.db import Database

#: Longest wait for the database's figures before reporting it down.
DATABASE_WITHIN = 5.0
#: The analytics dashboard shows the status computed at most once a second per process,
#: and answers one up to three seconds old while the next is computed in the background
#: (services/recent.py; docs/analytics.md). ``system/status`` itself always reads afresh.
RECENT_FRESH_FOR = 1.0
RECENT_STALE_FOR = 3.0


async def system_status(db: Database, hub: Hub) -> dict[str, Any]:
    reasons: list[str] = []
    backlog: dict[str, int] = {}
    database: dict[str, Any] = {"backend": "sqlite" if db.is_sqlite else "postgresql"}
    try:
        # Bounded: the status page must answer during an outage, also when the database
        # host drops packets instead of refusing connections.
        async with asyncio.timeout(DATABASE_WITHIN):
            async with db.connect() as conn:
                backlog = await delivery_store.backlog(conn)
        database["status"] = "ok"
    except StorageError as exc:
        database["status"] = "down"
        reasons.append(f"database unreachable: {exc.message}")
    except TimeoutError:
        database["status"] = "down"
        reasons.append(f"database unreachable: no answer within {DATABASE_WITHIN:g} s")
    hub_status = hub.status()
    redis = hub_status["redis"]
    if redis is not None and not redis["healthy"]:
        reasons.append(f"redis unavailable: {redis['reason']} (using in-process fallbacks)")
    broker = hub_status["broker"]
    if not broker["healthy"]:
        reasons.append(f"broker degraded: {broker['reason']}")
    per_node = await hub.sessions.per_node()
    if database["status"] == "down":
        status = "down"
    elif reasons:
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "reasons": reasons,
        "node_id": hub_status["node_id"],
        "database": database,
        "redis": redis,
        "broker": broker,
        "connections": {"total": sum(per_node.values()), "per_node": per_node},
        "outbox": {
            "pending": backlog.get("pending", 0) + backlog.get("failed", 0),
            "sending": backlog.get("sending", 0),
            "dead": backlog.get("dead", 0),
            "scheduled": backlog.get("scheduled", 0),
        },
    }
