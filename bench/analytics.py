"""`python3 -m bench.analytics --n 1000000`: the metrics API at N elements with a year of stage history.

On a fresh database (migrated), a `deal` type with a five-stage pipeline (NEW → QUALIFIED → PROPOSAL → WON / LOST)
and 50 sellers; then N deals created over the last 365 days, each walking the pipeline with random waits (most close
within weeks; the youngest are still open), written with generate_series in a few statements (the rollups' trigger
off while loading, then `analytics_rebuild`, timed: the same sums the trigger keeps). `VACUUM ANALYZE`, then each
report is asked `--requests` times through the API (in process, over ASGI: auth, service, SQL, JSON) and its p50 /
p95 / max printed. Last, the write path: stage moves through the API with the trigger on and off, alternating
blocks, to give what the rollups cost a move.
"""

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.cli import run_migrations
from app.settings import Settings

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STAGES = [
    ("NEW", "process"),
    ("QUALIFIED", "process"),
    ("PROPOSAL", "process"),
    ("WON", "success"),
    ("LOST", "failure"),
]

# Each deal's path, one row per deal: waits are exponential (means 2, 4 and 6 days), conversions 75 %, 60 %, 50 %;
# scores lean to the outcome. A step whose time is still to come has not happened.
PATHS_SQL = """
CREATE UNLOGGED TABLE bench_paths AS
SELECT gen_random_uuid() AS id, g,
    ($1::uuid[])[1 + g % array_length($1::uuid[], 1)] AS assignee,
    round((100 + random() * 9900)::numeric, 2) AS amount,
    (ARRAY['ads', 'referral', 'event', 'partner'])[1 + g % 4] AS source,
    t0,
    t0 + make_interval(secs => -ln(1 - random()) * 2 * 86400) AS t1,
    random() < 0.75 AS q,
    random() AS d2, random() < 0.6 AS p, random() AS d3, random() < 0.5 AS w,
    random() AS s1, random() AS s2
FROM (SELECT g, now() - random() * interval '365 days' AS t0 FROM generate_series(1, $2::int) g) s
"""
STEPS_SQL = """
CREATE UNLOGGED TABLE bench_steps AS
SELECT id, t0, t1, t2, t3,
    CASE WHEN q THEN 'QUALIFIED' ELSE 'LOST' END AS st1,
    CASE WHEN p THEN 'PROPOSAL' ELSE 'LOST' END AS st2,
    CASE WHEN w THEN 'WON' ELSE 'LOST' END AS st3,
    q, p
FROM (
    SELECT *, t1 + make_interval(secs => -ln(1 - d2) * 4 * 86400) AS t2 FROM bench_paths
) a
CROSS JOIN LATERAL (SELECT t2 + make_interval(secs => -ln(1 - d3) * 6 * 86400) AS t3) b
"""
HISTORY_SQL = """
INSERT INTO stage_history (workspace_id, element_id, from_pipeline_id, from_stage_id, to_pipeline_id, to_stage_id,
    moved_by, moved_at)
SELECT $1::uuid, id, f_p, f_s, $2::uuid, t_s, by, at FROM (
    SELECT id, NULL::uuid AS f_p, NULL::uuid AS f_s, ($3::uuid[])[1] AS t_s, $4::uuid AS by, t0 AS at FROM bench_steps
    UNION ALL
    SELECT id, $2::uuid, ($3::uuid[])[1], CASE WHEN q THEN ($3::uuid[])[2] ELSE ($3::uuid[])[5] END,
        CASE WHEN random() < 0.3 THEN NULL ELSE $4::uuid END, t1 FROM bench_steps WHERE t1 <= now()
    UNION ALL
    SELECT id, $2::uuid, ($3::uuid[])[2], CASE WHEN p THEN ($3::uuid[])[3] ELSE ($3::uuid[])[5] END,
        CASE WHEN random() < 0.3 THEN NULL ELSE $4::uuid END, t2 FROM bench_steps WHERE q AND t2 <= now()
    UNION ALL
    SELECT id, $2::uuid, ($3::uuid[])[3], CASE WHEN st3 = 'WON' THEN ($3::uuid[])[4] ELSE ($3::uuid[])[5] END,
        CASE WHEN random() < 0.3 THEN NULL ELSE $4::uuid END, t3 FROM bench_steps WHERE q AND p AND t3 <= now()
) h
ORDER BY at
"""
ELEMENTS_SQL = """
INSERT INTO elements (id, workspace_id, entity_type_id, pipeline_id, stage_id, title, assigned_to, amount, source,
    score, values, version, created_at, updated_at, moved_at)
SELECT p.id, $1::uuid, $2::uuid, $3::uuid,
    ($4::uuid[])[CASE
        WHEN s.t1 > now() THEN 1
        WHEN NOT s.q THEN 5
        WHEN s.t2 > now() THEN 2
        WHEN NOT s.p THEN 5
        WHEN s.t3 > now() THEN 3
        WHEN s.st3 = 'WON' THEN 4 ELSE 5 END],
    'Deal ' || p.g, p.assignee, p.amount, p.source,
    greatest(1, least(100, round(CASE WHEN s.q AND s.p AND s.st3 = 'WON' THEN 62 ELSE 42 END
        + 20 * sqrt(-2 * ln(1 - p.s1)) * cos(2 * pi() * p.s2))))::int,
    jsonb_build_object('channel', CASE WHEN p.g % 3 = 0 THEN 'partner' ELSE 'web' END), 1, p.t0,
    greatest(p.t0, LEAST(now(), CASE WHEN s.t1 > now() THEN p.t0 WHEN NOT s.q THEN s.t1 WHEN s.t2 > now() THEN s.t1
        WHEN NOT s.p THEN s.t2 WHEN s.t3 > now() THEN s.t2 ELSE s.t3 END)),
    LEAST(now(), CASE WHEN s.t1 > now() THEN p.t0 WHEN NOT s.q THEN s.t1 WHEN s.t2 > now() THEN s.t1
        WHEN NOT s.p THEN s.t2 WHEN s.t3 > now() THEN s.t2 ELSE s.t3 END)
FROM bench_paths p JOIN bench_steps s ON s.id = p.id
"""


def summary(name: str, samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "scenario": name,
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_ms": round(ordered[-1], 1),
    }


async def timed(requests: int, call: Callable[[], Awaitable[httpx.Response]]) -> list[float]:
    await call()  # warm: the type's metadata, the plans
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
    return samples


async def setup(client: httpx.AsyncClient, users: int) -> dict[str, Any]:
    async def ok(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 300:
            raise RuntimeError(response.text)
        body: dict[str, Any] = response.json()
        return body

    entity_type = await ok(
        await client.post(
            "/entity-types", json={"code": "deal", "title": "Deal", "settings": {"pipelines_enabled": True}}
        )
    )
    await ok(
        await client.post(
            "/entity-types/deal/fields",
            json={"code": "channel", "type": "enum", "options": [{"value": "web"}, {"value": "partner"}]},
        )
    )
    pipeline = await ok(
        await client.post(
            "/entity-types/deal/pipelines",
            json={
                "title": "Sales",
                "stages": [{"code": code, "title": code.title(), "semantic": sem} for code, sem in STAGES],
            },
        )
    )
    stages = (await ok(await client.get(f"/pipelines/{pipeline['id']}/stages")))["items"]
    people = [
        (await ok(await client.post("/users", json={"name": f"Seller {n}", "email": f"seller{n}@example.com"})))["id"]
        for n in range(users)
    ]
    return {
        "type_id": entity_type["id"],
        "pipeline_id": pipeline["id"],
        "stages": [s["id"] for s in sorted(stages, key=lambda s: s["sort"])],
        "users": people,
    }


async def load(database_url: str, world: dict[str, Any], workspace_id: str, n: int) -> dict[str, float]:
    connection = await asyncpg.connect(database_url)
    timings: dict[str, float] = {}
    try:
        users = [uuid.UUID(u) for u in world["users"]]
        stages = [uuid.UUID(s) for s in world["stages"]]
        started = time.perf_counter()
        await connection.execute(PATHS_SQL, users, n)
        await connection.execute(STEPS_SQL)
        timings["paths_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute(
            ELEMENTS_SQL,
            uuid.UUID(workspace_id),
            uuid.UUID(world["type_id"]),
            uuid.UUID(world["pipeline_id"]),
            stages,
        )
        timings["elements_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute("ALTER TABLE stage_history DISABLE TRIGGER stage_history_analytics")
        await connection.execute(
            HISTORY_SQL,
            uuid.UUID(workspace_id),
            uuid.UUID(world["pipeline_id"]),
            stages,
            users[0],
        )
        await connection.execute("ALTER TABLE stage_history ENABLE TRIGGER stage_history_analytics")
        timings["history_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute("SELECT analytics_rebuild($1::uuid)", uuid.UUID(workspace_id))
        timings["rebuild_s"] = time.perf_counter() - started
        await connection.execute("DROP TABLE bench_steps; DROP TABLE bench_paths")
        started = time.perf_counter()
        await connection.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
        counts = await connection.fetchrow(
            """SELECT (SELECT count(*) FROM elements) AS elements, (SELECT count(*) FROM stage_history) AS history,
                (SELECT count(*) FROM analytics_stage_days) AS stage_days,
                (SELECT count(*) FROM analytics_distributions) AS distribution_rows"""
        )
        timings.update({k: float(v) for k, v in dict(counts).items()})
    finally:
        await connection.close()
    return {k: round(v, 1) for k, v in timings.items()}


async def write_path(client: httpx.AsyncClient, database_url: str, world: dict[str, Any], moves: int) -> dict[str, Any]:
    """Stage moves through the API, the rollups' trigger on and off in alternating blocks of 50."""
    connection = await asyncpg.connect(database_url)
    created: list[str] = []
    batches: dict[bool, list[float]] = {True: [], False: []}
    samples: dict[bool, list[float]] = {True: [], False: []}
    try:
        for start in range(0, moves, 100):
            trigger = (start // 100) % 2 == 0
            state = "ENABLE" if trigger else "DISABLE"
            await connection.execute(f"ALTER TABLE stage_history {state} TRIGGER stage_history_analytics")
            items = [
                {"op": "create", "data": {"title": f"W{n}", "pipeline_id": world["pipeline_id"], "amount": 100}}
                for n in range(start, min(moves, start + 100))
            ]
            started = time.perf_counter()
            response = await client.post("/entity-types/deal/elements/batch", json={"items": items})
            batches[trigger].append((time.perf_counter() - started) * 1000)
            created += [e["id"] for e in response.json()["items"]]
        for block in range(0, len(created), 50):
            trigger = (block // 50) % 2 == 0
            state = "ENABLE" if trigger else "DISABLE"
            await connection.execute(f"ALTER TABLE stage_history {state} TRIGGER stage_history_analytics")
            for element_id in created[block : block + 50]:
                started = time.perf_counter()
                response = await client.post(f"/elements/{element_id}/move", json={"stage_code": "QUALIFIED"})
                samples[trigger].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(response.text)
        await connection.execute("ALTER TABLE stage_history ENABLE TRIGGER stage_history_analytics")
    finally:
        await connection.close()
    on, off = summary("stage move, rollups on", samples[True]), summary("stage move, rollups off", samples[False])
    batch_on = summary("batch of 100 creates, rollups on", batches[True])
    batch_off = summary("batch of 100 creates, rollups off", batches[False])
    return {
        "on": on,
        "off": off,
        "cost_p50_ms": round(on["p50_ms"] - off["p50_ms"], 2),
        "batch_on": batch_on,
        "batch_off": batch_off,
        "batch_cost_p50_ms": round(batch_on["p50_ms"] - batch_off["p50_ms"], 2),
    }


def scenarios(pipeline_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    today = datetime.now(UTC).date()
    base = {"entity_type": "deal", "pipeline_id": pipeline_id}
    month = {**base, "from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    year = {**base, "from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
    ahead = {**base, "from": (today - timedelta(days=60)).isoformat(), "to": (today + timedelta(days=30)).isoformat()}
    return [
        ("funnel, 30 days", "funnel", month),
        ("funnel, 365 days", "funnel", year),
        ("funnel, 365 days by week", "funnel", {**year, "group_by": "week"}),
        ("funnel, 30 days by assignee", "funnel", {**month, "group_by": "assignee"}),
        ("time in stage, 30 days", "time-in-stage", month),
        ("time in stage, 365 days", "time-in-stage", year),
        ("time in stage, 365 days by month", "time-in-stage", {**year, "group_by": "month"}),
        ("forecast (stage probability)", "money", {**ahead, "probability": "stage"}),
        ("forecast (score probability)", "money", {**ahead, "probability": "model"}),
        ("scoring, 365 days", "scoring", year),
        ("funnel, 30 days by source (history)", "funnel", {**month, "group_by": "source"}),
        ("time in stage, 30 days by seller (history)", "time-in-stage", {**month, "group_by": "assignee"}),
    ]


async def _prepare(args: argparse.Namespace, name: str, database_url: str) -> tuple[str, str | None]:
    """(workspace id, admin key): a fresh workspace on a migrated database, or a new key on a kept one."""
    from app.auth.service import issue_key
    from app.db import make_engine, make_sessionmaker, unit_of_work
    from app.workspaces import service as workspace_service

    settings = Settings(DATABASE_URL=database_url, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    if not args.reuse:
        await asyncio.to_thread(run_migrations, settings.database_url)
    engine = make_engine(settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            if not args.reuse:
                workspace, key = await workspace_service.create_workspace(session, name="bench")
                return str(workspace.id), key
            connection = await asyncpg.connect(database_url)
            try:
                workspace_id = await connection.fetchval("SELECT workspace_id FROM pipelines WHERE title = 'Sales'")
            finally:
                await connection.close()
            _, key = await issue_key(session, workspace_id, name="bench again", role="admin")
            return str(workspace_id), key
    finally:
        await engine.dispose()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from app.main import create_app

    name = args.reuse or f"stageflow_bench_analytics_{uuid.uuid4().hex[:6]}"
    if not args.reuse:
        admin = await asyncpg.connect(args.admin_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    database_url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    report: dict[str, Any] = {"n": args.n, "database": name, "started_at": datetime.now(UTC).isoformat()}
    report["uptime_before"] = _uptime()
    try:
        workspace_id, key = await _prepare(args, name, database_url)
        settings = Settings(DATABASE_URL=database_url, ENVIRONMENT="test", OUTBOX_DISPATCHER_ENABLED=False)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://bench/api/v1",
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            ) as client:
                if args.reuse:
                    pipelines = (await client.get("/entity-types/deal/pipelines")).json()["items"]
                    world = {"pipeline_id": next(p["id"] for p in pipelines if p["title"] == "Sales")}
                else:
                    world = await setup(client, args.users)
                    print(f"loading {args.n:,} deals …", flush=True)
                    report["load"] = await load(database_url, world, workspace_id, args.n)
                    print(json.dumps(report["load"]), flush=True)
                results = []
                for title, path, params in scenarios(world["pipeline_id"]):
                    requests = args.requests if "history" not in title else max(3, args.requests // 10)
                    samples = await timed(requests, lambda p=path, q=params: client.get(f"/analytics/{p}", params=q))
                    results.append(summary(title, samples))
                    print(json.dumps(results[-1]), flush=True)
                report["scenarios"] = results
                if args.moves:
                    report["write_path"] = await write_path(client, database_url, world, args.moves)
                    print(json.dumps(report["write_path"]), flush=True)
    finally:
        report["uptime_after"] = _uptime()
        if not args.keep and not args.reuse:
            admin = await asyncpg.connect(args.admin_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return report


def _uptime() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per report")
    parser.add_argument("--moves", type=int, default=600, help="stage moves for the write path (0: skip)")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database (EXPLAIN ANALYZE on it)")
    parser.add_argument("--reuse", metavar="DATABASE", help="a database kept by --keep: time the reports again")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
