"""S5 inbox at scale: the same data seeded with SQL into Clarion's schema and into
django-notifications' schema (same PostgreSQL): unread count, first page (20), reads/s
under load, and the first mark-all-read of the heavy user.

Data: ``total`` notifications, all unread, for ``users`` users; every 5th one belongs to
the heavy user (200,000 of 1,000,000), the rest spread evenly over the others.
Clarion is read with the server API key (``?user_id=``); Django with an ``X-User-Id``
header resolved by one primary-key lookup (bench/peers/djpeer/auth.py).

Ceilings of the same run: the same statements through asyncpg alone and behind a bare
Starlette endpoint (bench/s5_raw.py), and the server's CPU per read under the 32-connection
mix (a warm-up run first, so every request of the measured run is counted).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx

from bench import profiling, s5_raw
from bench.common import (
    BENCH,
    PEERS_PY,
    PY,
    Procs,
    Usage,
    clarion_env,
    drop_db,
    free_port,
    fresh_db,
    loadgen,
    psql,
    ratio,
    server_pids,
    start_clarion,
    wait_http,
)

DB = "clarion_bench_s5"
DJ_DB = "clarion_bench_s5_django"


def _seed_clarion(total: int, users: int) -> float:
    t0 = time.perf_counter()
    others = users - 1
    psql(
        f"""
        INSERT INTO users (user_id, data, unread_count, unseen_count, read_watermark,
                           seen_watermark, created_at, updated_at)
        SELECT 'u' || g, '{{}}'::json, 0, 0, 0, 0, now(), now()
        FROM generate_series(0, {others - 1}) g
        UNION ALL SELECT 'heavy', '{{}}'::json, 0, 0, 0, 0, now(), now();
        INSERT INTO notifications (user_id, type, title, message, template, priority, channels,
                                   content, data, created_at, forced_unread, inbox)
        SELECT CASE WHEN g % 5 = 0 THEN 'heavy' ELSE 'u' || (g % {others}) END,
               t.type, 'Notification ' || g, t.message, t.template, t.priority, t.channels,
               t.content, t.data, now() - ({total} - g) * interval '1 second', false, true
        FROM generate_series(1, {total}) g, (SELECT * FROM notifications LIMIT 1) t;
        UPDATE users SET unread_count = c.n, unseen_count = c.n
        FROM (SELECT user_id, count(*) AS n FROM notifications GROUP BY user_id) c
        WHERE users.user_id = c.user_id;
        """,
        db=DB,
    )
    for table in ("users", "notifications"):  # VACUUM cannot share psql's transaction
        psql(f"VACUUM ANALYZE {table}", db=DB)
    return round(time.perf_counter() - t0, 1)


def _seed_django(total: int, users: int) -> float:
    t0 = time.perf_counter()
    others = users - 1
    psql(
        f"""
        INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name,
                               email, is_staff, is_active, date_joined)
        SELECT g, '!', false, 'u' || g, '', '', '', false, true, now()
        FROM generate_series(1, {users}) g;
        INSERT INTO notifications_notification (level, unread, actor_object_id, verb,
            timestamp, public, actor_content_type_id, recipient_id, deleted, emailed)
        SELECT 'info', true, '1', 'Notification ' || g,
               now() - ({total} - g) * interval '1 second', true,
               (SELECT id FROM django_content_type WHERE app_label = 'auth' AND model = 'user'),
               CASE WHEN g % 5 = 0 THEN {users} ELSE (g % {others}) + 1 END, false, false
        FROM generate_series(1, {total}) g;
        """,
        db=DJ_DB,
    )
    for table in ("auth_user", "notifications_notification"):
        psql(f"VACUUM ANALYZE {table}", db=DJ_DB)
    return round(time.perf_counter() - t0, 1)


def _measure(
    procs: Procs,
    pids: list[int],
    templates: dict[str, dict[str, Any]],
    users: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """Latency at concurrency 1 (each operation alone), then reads/s at concurrency 32."""
    latency: dict[str, Any] = {}
    for name, t in templates.items():
        job = {
            "name": name,
            "mode": "closed",
            "concurrency": 1,
            "warmup": 0.5,
            "duration": seconds / 2,
            "max_requests": 20_000,
            **users,
            "requests": [{**t, "name": name}],
        }
        r = loadgen(procs, {"jobs": [job]})["jobs"][name]
        latency[name] = {k: r[k] for k in ("requests", "ok", "p50_ms", "p95_ms", "p99_ms")}
    mix = {
        "name": "mix",
        "mode": "closed",
        "concurrency": 32,
        "duration": seconds,
        "max_requests": 500_000,
        **users,
        "requests": [{**t, "name": n} for n, t in templates.items()],
    }
    # Warm up in a run of its own, then measure with no warm-up inside the measured one:
    # every request the server answers while its CPU is counted is then a counted request,
    # so CPU per read is the server's CPU over exactly those reads.
    loadgen(procs, {"jobs": [{**mix, "name": "warmup", "duration": 1}]})
    usage = Usage(pids).start()
    r = loadgen(procs, {"jobs": [mix]})["jobs"]["mix"]
    usage.stop()
    return {
        "latency_alone": latency,
        "reads_under_load": {
            k: r[k] for k in ("requests", "ok", "status", "ok_per_s", "p50_ms", "p99_ms")
        },
        "reads_per_s": r["ok_per_s"],
        "server_cpu_us_per_read": round(1e6 * usage.cpu / r["requests"], 1)
        if r["requests"]
        else None,
        **usage.as_dict(),
    }


def _mark_all(client: httpx.Client, url: str) -> dict[str, Any]:
    """One mark-all-read on an open connection. A one-off ``httpx.post`` builds a client
    per call (its TLS context alone is ~50-100 ms here) and connects: that, not the
    server, was most of the figure, for both systems."""
    t0 = time.perf_counter()
    r = client.post(url, follow_redirects=False)
    return {"status": r.status_code, "ms": round(1000 * (time.perf_counter() - t0), 2)}


def _warm_client(headers: dict[str, str], warm_url: str) -> httpx.Client:
    """A client whose connection is already open (one cheap GET); the caller closes it
    (an httpx client that has sent a request cannot be entered as a context manager)."""
    client = httpx.Client(headers=headers, timeout=120)
    client.get(warm_url).raise_for_status()
    return client


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    total = 100_000 if quick else 1_000_000
    users = 1_000 if quick else 10_000
    seconds = 3 if quick else 10
    result: dict[str, Any] = {
        "notifications": total,
        "users": users,
        "heavy_user_notifications": total // 5,
    }
    plain = fresh_db(DB)
    pg = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        # Two processes, one per core, as the peer runs two gunicorn workers.
        server = start_clarion(procs, {**clarion_env(pg), "CLARION_WORKERS": "2"})
        auth = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
        httpx.post(
            f"{server.url}/api/v1/notifications",
            json={"user_id": "seed", "type": "follow", "title": "seed", "message": "Say hi!"},
            headers=auth,
            timeout=10,
        ).raise_for_status()
        result["clarion_seed_seconds"] = _seed_clarion(total, users)
        api = f"{server.url}/api/v1/notifications"
        templates = {
            "unread_count": {"method": "GET", "url": f"{api}/unread-count?user_id={{u}}"},
            "unread_count_heavy": {"method": "GET", "url": f"{api}/unread-count?user_id=heavy"},
            "first_page": {"method": "GET", "url": f"{api}?user_id={{u}}&limit=20"},
            "first_page_heavy": {"method": "GET", "url": f"{api}?user_id=heavy&limit=20"},
        }
        for t in templates.values():
            t["headers"] = auth
        spy = profiling.start(procs, server.proc.pid, "s5_inbox", seconds * 3) if profile else None
        clarion = _measure(
            procs,
            server_pids(server.proc.pid),
            templates,
            {"users": users - 1, "user_prefix": "u"},
            seconds,
        )
        if spy is not None:
            clarion["profile"] = profiling.finish(procs, spy, "s5_inbox")
        client = _warm_client(auth, f"{server.url}/healthz")
        try:
            read_all = f"{api}/read-all?user_id=heavy"
            clarion["mark_all_read_heavy_first"] = _mark_all(client, read_all)
            clarion["mark_all_read_heavy_again"] = _mark_all(client, read_all)
        finally:
            client.close()
        result["clarion"] = clarion
        procs.stop(server.proc)
        # The ceilings of the two hot reads, on the same rows, with Clarion stopped.
        raw = s5_raw.driver_baseline(plain, users, seconds / 2)
        raw["over_bare_starlette"] = _bare_starlette(procs, plain, users, seconds)
        result["raw_driver"] = raw
    finally:
        drop_db(DB)
    result["clarion_over_raw_driver"] = _over_raw(result["clarion"], result["raw_driver"])
    if PEERS_PY.exists():
        result["django"] = _django(procs, total, users, seconds, result)
        d, c = result["django"], result["clarion"]
        result["clarion_over_django"] = {
            "reads_per_s": ratio(c["reads_per_s"], d["reads_per_s"], 2),
            **{
                f"{k}_p99_speedup": ratio(
                    d["latency_alone"][k]["p99_ms"], c["latency_alone"][k]["p99_ms"], 2
                )
                for k in c["latency_alone"]
            },
            "mark_all_read_speedup": ratio(
                d["mark_all_read_heavy_first"]["ms"], c["mark_all_read_heavy_first"]["ms"], 2
            ),
        }
    result["targets"] = {
        "unread_count_p99_ms": 2,
        "first_page_p99_ms": 10,
        "mark_all_read_ms": 20,
        "reads_per_s": 3000,
        # ratios (bench/README.md): reads/s over bare Starlette's and django-notifications';
        # each hot read's p99 over the same statement's through asyncpg alone
        "reads_over_bare_starlette": 0.3,
        "over_django": 20,
        "p99_over_raw_driver": 2,
    }
    return result


def _over_raw(clarion: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Clarion's p99 over HTTP as a multiple of the same statement's p99 through asyncpg
    alone (the target's comparison), and of the same statement behind bare Starlette
    (like with like: both over HTTP, same client)."""
    alone = clarion["latency_alone"]
    http = raw.get("over_bare_starlette", {})
    out: dict[str, Any] = {}
    for op, key in (
        ("unread_count", "count"),
        ("unread_count_heavy", "count_heavy"),
        ("first_page", "first_page"),
        ("first_page_heavy", "first_page_heavy"),
    ):
        p99 = alone[op]["p99_ms"]
        out[f"{key}_p99"] = ratio(p99, raw.get(f"{key}_p99_ms"), 2)
        out[f"{key}_p99_over_bare_starlette"] = ratio(p99, http.get(f"{key}_p99_ms"), 2)
    out["server_cpu_us_per_read_over_bare_starlette"] = ratio(
        clarion.get("server_cpu_us_per_read"), http.get("server_cpu_us_per_read"), 2
    )
    out["reads_per_s_over_bare_starlette"] = ratio(
        clarion.get("reads_per_s"), http.get("reads_per_s"), 3
    )
    return out


def _bare_starlette(procs: Procs, dsn: str, users: int, seconds: float) -> dict[str, Any]:
    """(b) of bench/s5_raw.py: the same statements behind a bare Starlette endpoint, two
    uvicorn processes, through the same load generator as Clarion (latency alone, then the
    32-connection mix of count and first page)."""
    port = free_port()
    env = {**os.environ, s5_raw.DSN_ENV: dsn, "PYTHONPATH": str(BENCH.parent)}
    proc = procs.spawn(
        [PY, str(BENCH / "s5_raw.py"), str(port)],
        env=env,
        cwd=BENCH.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/count?user_id=heavy", proc)
        templates = {
            "unread_count": {"method": "GET", "url": f"{base}/count?user_id={{u}}"},
            "unread_count_heavy": {"method": "GET", "url": f"{base}/count?user_id=heavy"},
            "first_page": {"method": "GET", "url": f"{base}/page?user_id={{u}}"},
            "first_page_heavy": {"method": "GET", "url": f"{base}/page?user_id=heavy"},
        }
        out = _measure(
            procs,
            server_pids(proc.pid),
            templates,
            {"users": users - 1, "user_prefix": "u"},
            seconds,
        )
    finally:
        procs.stop(proc)
    alone = out["latency_alone"]
    return {
        "server": "uvicorn + Starlette, 2 processes, asyncpg pool, the same statements",
        "count_p99_ms": alone["unread_count"]["p99_ms"],
        "count_heavy_p99_ms": alone["unread_count_heavy"]["p99_ms"],
        "first_page_p99_ms": alone["first_page"]["p99_ms"],
        "first_page_heavy_p99_ms": alone["first_page_heavy"]["p99_ms"],
        **out,
    }


def _django(
    procs: Procs, total: int, users: int, seconds: float, result: dict[str, Any]
) -> dict[str, Any]:
    fresh_db(DJ_DB)
    env = {**os.environ, "DJPEER_DB": DJ_DB, "PYTHONPATH": str(BENCH / "peers")}
    env["DJANGO_SETTINGS_MODULE"] = "djpeer.settings"
    try:
        subprocess.run(
            [str(PEERS_PY), "-m", "django", "migrate", "-v0"],
            env=env,
            check=True,
            timeout=300,
            capture_output=True,
        )
        result["django_seed_seconds"] = _seed_django(total, users)
        port = free_port()
        proc = procs.spawn(
            [
                str(PEERS_PY),
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "djpeer.wsgi",
            ],
            env=env,
            cwd=BENCH / "peers",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}/inbox/notifications"
        wait_http(f"{base}/api/unread_count/", proc)
        from bench.common import children

        pids = [proc.pid, *children(proc.pid)]
        hdr = {"X-User-Id": "{u}"}
        heavy = {"X-User-Id": str(users)}
        templates = {
            "unread_count": {"method": "GET", "url": f"{base}/api/unread_count/", "headers": hdr},
            "unread_count_heavy": {
                "method": "GET",
                "url": f"{base}/api/unread_count/",
                "headers": heavy,
            },
            "first_page": {
                "method": "GET",
                "url": f"{base}/api/unread_list/?max=20",
                "headers": hdr,
            },
            "first_page_heavy": {
                "method": "GET",
                "url": f"{base}/api/unread_list/?max=20",
                "headers": heavy,
            },
        }
        out = _measure(
            procs,
            pids,
            templates,
            {"users": users - 1, "user_prefix": "", "user_offset": 1},
            seconds,
        )
        client = _warm_client(heavy, f"{base}/api/unread_count/")
        try:
            out["mark_all_read_heavy_first"] = _mark_all(client, f"{base}/mark-all-as-read/")
            out["mark_all_read_heavy_again"] = _mark_all(client, f"{base}/mark-all-as-read/")
        finally:
            client.close()
        out["server"] = "gunicorn 2 workers x 4 threads (gthread), Django, psycopg 3"
        procs.stop(proc)
        return out
    finally:
        drop_db(DJ_DB)
