"""`python3 -m bench`: a fresh database, the API served as in production (`stageflow serve`), N leads loaded
through the batch endpoint, then every scenario over HTTP at bounded concurrency, and the same queries on a plain
table (the floor). Each scenario reports latency and the CPU it cost per operation in the client, the API server
and PostgreSQL (bench.cpu)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.cli import DEFAULT_SERVER, HttpServer
from app.kit.net import free_port, wait_until_healthy
from bench.cpu import CpuMeter, CpuUse, descendants, postmaster_of, read_all, tree_cpu_ms
from bench.data import (
    DAY0,
    DAYS,
    FIELDS,
    INDUSTRIES,
    PLAIN_COLUMNS,
    PLAIN_INDEXES,
    STAGE_CODES,
    STAGES,
    company_name,
    leads,
    plain_row,
)
from bench.driver import RequestFailed, Result, run
from bench.http import CLIENTS, Client, Reply, open_client

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GROWTH_POINTS = (10_000, 100_000, 1_000_000)
SAMPLE_SIZE = 20_000
API = "/api/v1"


@dataclass
class Config:
    n: int = 1_000_000
    concurrency: int = 16
    seed: int = 47
    out: Path = Path("bench-results.json")
    requests: int = 1000
    growth: bool = False
    growth_requests: int = 300
    workers: int = 2
    server: str = DEFAULT_SERVER.value
    load_concurrency: int = 2
    batch_size: int = 1000
    keep: bool = False
    admin_url: str = DEFAULT_ADMIN_URL
    quiet: bool = False
    scenario_seconds: float = 90.0
    client: str = CLIENTS[0]


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="elements to load (default 1,000,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--seed", type=int, default=47)
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"), help="JSON results file")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per scenario")
    parser.add_argument("--growth", action="store_true", help="also measure filtered list + board at 10k/100k/1M")
    parser.add_argument("--growth-requests", type=int, default=300, help="requests per growth measurement")
    parser.add_argument("--workers", type=int, default=2, help="API server worker processes")
    parser.add_argument(
        "--server",
        choices=[s.value for s in HttpServer],
        default=DEFAULT_SERVER.value,
        help=f"HTTP server for the API (default {DEFAULT_SERVER.value}, as `stageflow serve`)",
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default=CLIENTS[0],
        help="the benchmark's HTTP client (default aiohttp; httpx, as runs A-H used, costs 5-10 times the CPU)",
    )
    parser.add_argument("--load-concurrency", type=int, default=2, help="batch requests in flight while loading")
    parser.add_argument("--batch-size", type=int, default=1000, help="elements per batch request (max 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL URL used to create and drop the benchmark database (env BENCH_DATABASE_URL)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--scenario-seconds", type=float, default=90.0, help="start no new request in a scenario after this long"
    )
    args = parser.parse_args(argv)
    return Config(
        n=args.n,
        concurrency=args.concurrency,
        seed=args.seed,
        out=args.out,
        requests=args.requests,
        growth=args.growth,
        growth_requests=args.growth_requests,
        workers=args.workers,
        server=args.server,
        load_concurrency=args.load_concurrency,
        batch_size=min(args.batch_size, 1000),
        keep=args.keep,
        admin_url=args.admin_url,
        quiet=args.quiet,
        scenario_seconds=args.scenario_seconds,
        client=args.client,
    )


def _with_database(url: str, name: str) -> str:
    base, _, query = url.replace("postgresql+asyncpg://", "postgresql://").partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


# --- the API server ---------------------------------------------------------------------------------------------


@dataclass
class ApiServer:
    base_url: str
    pid: int  # the server's main process: its tree (workers included) is what the server's CPU is read from


@contextlib.contextmanager
def api_server(
    database_url: str, workers: int, concurrency: int, server: str, *, extra_env: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """`stageflow serve` on a free loopback port with the chosen HTTP server, as in production."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    # Enough connections per worker for its share of the concurrent requests, few enough for a shared server.
    per_worker = max(4, concurrency // max(1, workers) + 2)
    env.update(
        DATABASE_URL=database_url,
        DB_POOL_SIZE=str(per_worker),
        DB_MAX_OVERFLOW="2",
        LOG_LEVEL="WARNING",
        ENVIRONMENT="production",
    )
    env.update(extra_env or {})
    env.setdefault("JWT_SECRET", secrets.token_urlsafe(48))  # production refuses to start without one
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--server",
        server,
    ]
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, timeout=60)
        wait_until_settled(process.pid, workers, timeout=90)
        yield ApiServer(base, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_settled(pid: int, workers: int, *, timeout: float, quiet_ms_per_s: float = 50.0) -> None:
    """Wait until every worker has started and the server's process tree has gone quiet. The health check answers as
    soon as the first worker is up while the others may still be importing the app; the client's keep-alive
    connections opened then would all stay on that first worker, and the run would measure one worker out of N."""
    children_expected = workers if workers > 1 else 0  # one uvicorn worker serves in the main process
    deadline = time.monotonic() + timeout
    before: float | None = None
    while time.monotonic() < deadline:
        stats = read_all()
        used = tree_cpu_ms(pid, stats)
        if used is None:
            return  # no /proc here (or the server is gone: the requests will tell)
        started = len(descendants(pid, stats)) >= children_expected
        if started and before is not None and used - before < quiet_ms_per_s / 2:
            return
        before = used
        time.sleep(0.5)
    print(f"warning: the API server did not settle within {timeout:.0f} s; measuring anyway", file=sys.stderr)


async def find_postmaster(database_url: str) -> int | None:
    """The local PostgreSQL server's main process, for reading its CPU (None when it runs elsewhere)."""
    connection = await asyncpg.connect(database_url)
    try:
        return postmaster_of(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await connection.close()


async def metered(meter: CpuMeter, work: Awaitable[Result], *, server: bool = True) -> Result:
    """Run one scenario and attach the CPU it used (client, server, PostgreSQL).

    The client's garbage collector is off while it runs, as `timeit` does: after a 1M load the client holds millions
    of objects, and one full collection stalls every request in flight for a fraction of a second, which the report
    would charge to the server."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        with meter.measure(server=server) as reading:
            result = await work
    finally:
        gc.enable()
        gc.unfreeze()
    result.cpu = reading.use
    return result


async def timed(meter: CpuMeter, scenarios: Scenarios, name: str, count: int) -> Result:
    """A scenario's timed requests, after twice as many untimed ones as are in flight: the first request of a kind on
    each worker and connection pays for lazy imports, prepared statements and plans (get by id, the first scenario,
    had a p99 of 250–650 ms from its first few requests alone)."""
    await getattr(scenarios, name)(2 * scenarios.config.concurrency)
    return await metered(meter, getattr(scenarios, name)(count))


# --- setup over the API -----------------------------------------------------------------------------------------


@dataclass
class Setup:
    pipeline_ids: list[str]
    stage_ids: dict[str, dict[str, str]]  # pipeline id -> stage code -> stage id
    user_ids: list[str] = field(default_factory=list)  # the managers leads are assigned to, round robin
    person_email: str = ""  # manager 0: logs in with a role that reads only their own leads


async def _ok(response: Reply) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RequestFailed(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


async def create_schema(client: Client) -> Setup:
    await _ok(
        await client.post(
            f"{API}/entity-types", json={"code": "lead", "title": "Lead", "settings": {"pipelines_enabled": True}}
        )
    )
    for spec in FIELDS:
        await _ok(await client.post(f"{API}/entity-types/lead/fields", json=spec))
    stages = [{"code": code, "title": title, "semantic": semantic} for code, title, semantic in STAGES]
    existing = (await _ok(await client.get(f"{API}/entity-types/lead/pipelines")))["items"]
    pipelines = []
    for number, title in enumerate(("Inbound", "Outbound")):
        body = {"title": title, "is_default": number == 0, "stages": stages}
        pipelines.append(await _ok(await client.post(f"{API}/entity-types/lead/pipelines", json=body)))
    for old in existing:  # the type's preset pipeline is replaced by the two benchmark ones
        response = await client.delete(f"{API}/pipelines/{old['id']}")
        if response.status_code >= 400:
            raise RequestFailed(f"cannot delete the preset pipeline: {response.text}")
    own = {"name": "own leads", "grants": [{"entity_type": "lead", "read": "own", "update": "own", "export": "own"}]}
    role = await _ok(await client.post(f"{API}/roles", json=own))
    user_ids = []
    for number in range(MANAGERS):
        user: dict[str, Any] = {"name": f"Manager {number}", "email": f"manager{number}@bench.example"}
        if number == 0:
            user.update(password=PERSON_PASSWORD, role_ids=[role["id"]])
        user_ids.append((await _ok(await client.post(f"{API}/users", json=user)))["id"])
    return Setup(
        pipeline_ids=[p["id"] for p in pipelines],
        stage_ids={p["id"]: {s["code"]: s["id"] for s in p["stages"]} for p in pipelines},
        user_ids=user_ids,
        person_email="manager0@bench.example",
    )


# Leads are assigned round robin to this many managers: an `own`-scoped person sees 1 in MANAGERS.
MANAGERS = 50
PERSON_PASSWORD = secrets.token_urlsafe(16)


async def person_token(client: Client, setup: Setup, workspace_id: str) -> str:
    """An access token for manager 0 (role: read own leads), for the permission-filtering scenarios."""
    body = {"email": setup.person_email, "password": PERSON_PASSWORD, "workspace_id": workspace_id}
    return str((await _ok(await client.post(f"{API}/auth/login", json=body)))["access_token"])


# --- loading ------------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """Some loaded elements (id, pipeline index, stage code) for the per-element scenarios."""

    items: list[list[Any]] = field(default_factory=list)


async def load(
    client: Client, config: Config, setup: Setup, start: int, stop: int, sample: Sample, every: int
) -> Result:
    """Elements start…stop-1 through the batch endpoint, `load_concurrency` batches in flight."""
    result = Result("bulk load (batch endpoint)")
    batches = list(range(start, stop, config.batch_size))
    loaded = 0
    started = time.perf_counter()
    last_report = started

    async def one(index: int, record: Callable[[float], None]) -> None:
        nonlocal loaded, last_report
        first = batches[index]
        chunk = list(leads(config.seed, first, min(first + config.batch_size, stop)))
        body = {"items": [{"op": "create", "data": lead.body(setup.pipeline_ids, setup.user_ids)} for lead in chunk]}
        t0 = time.perf_counter()
        response = await client.post(
            f"{API}/entity-types/lead/elements/batch",
            content=orjson.dumps(body),
            # A new connection per batch: a kept one stays on the worker that accepted it, and two loaders on
            # one worker left the other idle (run G loaded at 1,301/s that way).
            headers={"content-type": "application/json", "connection": "close"},
            timeout=300,
        )
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code >= 400:
            await _ok(response)
        items = orjson.loads(response.content)["items"]  # ~1 MB per batch: the fast parser
        record(elapsed)
        for lead, item in zip(chunk, items, strict=True):
            if lead.index % every == 0:
                sample.items.append([item["id"], lead.pipeline, item["stage_code"]])
        loaded += len(chunk)
        now = time.perf_counter()
        if not config.quiet and (now - last_report > 5 or start + loaded == stop):
            last_report = now
            rate = loaded / (now - started)
            print(f"  loaded {start + loaded:>9,} / {config.n:,}  ({rate:,.0f} elements/s)", flush=True)

    timed = await run("load", len(batches), config.load_concurrency, one)
    result.seconds = timed.seconds
    result.count = loaded
    result.errors = timed.errors
    result.first_error = timed.first_error
    result.latencies_ms = timed.latencies_ms
    result.note = f"{config.batch_size} elements per request; p50/p95/p99 are per batch request"
    if timed.errors:
        raise RuntimeError(f"loading failed: {timed.first_error}")
    return result


async def vacuum_analyze(database_url: str) -> float:
    connection = await asyncpg.connect(database_url)
    try:
        t0 = time.perf_counter()
        # The whole database: elements, their value rows and the type's read model table.
        await connection.execute("VACUUM (ANALYZE)")
        return time.perf_counter() - t0
    finally:
        await connection.close()


# --- scenarios ----------------------------------------------------------------------------------------------------


def _rng(config: Config, name: str) -> random.Random:
    return random.Random(f"{config.seed}:{name}")


async def _timed(
    client: Client,
    record: Callable[[float], None],
    method: str,
    url: str,
    *,
    parse: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """One timed request; the body is decoded only when the scenario needs it (the client shares the CPUs)."""
    t0 = time.perf_counter()
    response = await client.request(method, url, **kwargs)
    elapsed = (time.perf_counter() - t0) * 1000
    if response.status_code >= 400:
        raise RequestFailed(f"{method} {url} -> {response.status_code}: {response.text[:300]}")
    record(elapsed)
    return (await _ok(response)) if parse else {}


def filtered_filter(rng: random.Random) -> dict[str, Any]:
    return {
        "and": [
            {"field": "industry", "op": "eq", "value": rng.choice(INDUSTRIES)},
            {"field": "budget", "op": "gte", "value": rng.randint(0, 9000)},
        ]
    }


class Scenarios:
    def __init__(self, client: Client, config: Config, setup: Setup, sample: Sample) -> None:
        self.client = client
        self.config = config
        self.setup = setup
        self.sample = sample.items

    def _pick(self, index: int, stride: int = 7919) -> list[Any]:
        return self.sample[(index * stride) % len(self.sample)]

    async def create(self, count: int) -> Result:
        base = 50_000_000  # element numbers beyond any load

        async def one(i: int, record: Callable[[float], None]) -> None:
            lead = next(leads(self.config.seed, base + i, base + i + 1))
            url = f"{API}/entity-types/lead/elements"
            await _timed(self.client, record, "POST", url, json=lead.body(self.setup.pipeline_ids))

        return await run("single create", count, self.config.concurrency, one, self.config.scenario_seconds)

    async def get(self, count: int) -> Result:
        async def one(i: int, record: Callable[[float], None]) -> None:
            await _timed(self.client, record, "GET", f"{API}/elements/{self._pick(i)[0]}")

        return await run("get by id", count, self.config.concurrency, one, self.config.scenario_seconds)

    async def patch(self, count: int) -> Result:
        rng = _rng(self.config, "patch")

        async def one(i: int, record: Callable[[float], None]) -> None:
            body = {"values": {"visits": rng.randint(0, 300), "budget": f"{rng.randint(0, 1_000_000) / 100:.2f}"}}
            await _timed(self.client, record, "PATCH", f"{API}/elements/{self._pick(i, 104729)[0]}", json=body)

        return await run("patch two values", count, self.config.concurrency, one, self.config.scenario_seconds)

    async def move(self, count: int) -> Result:
        async def one(i: int, record: Callable[[float], None]) -> None:
            item = self._pick(i, 15485863)
            target = STAGE_CODES[(STAGE_CODES.index(item[2]) + 1) % len(STAGE_CODES)]
            await _timed(self.client, record, "POST", f"{API}/elements/{item[0]}/move", json={"stage_code": target})
            item[2] = target

        return await run("stage move", count, self.config.concurrency, one, self.config.scenario_seconds)

    async def filtered(self, count: int) -> Result:
        rng = _rng(self.config, "filtered")
        url = f"{API}/entity-types/lead/elements"

        async def one(i: int, record: Callable[[float], None]) -> None:
            params = {"filter": json.dumps(filtered_filter(rng)), "sort": "-budget", "limit": "50"}
            await _timed(self.client, record, "GET", url, params=params)

        result = await run("filtered list", count, self.config.concurrency, one, self.config.scenario_seconds)
        result.note = "industry = X AND budget >= Y ORDER BY budget DESC LIMIT 50"
        return result

    async def paging(self, count: int) -> Result:
        rng = _rng(self.config, "paging")
        url = f"{API}/entity-types/lead/elements/search"
        pages = 5

        async def one(i: int, record: Callable[[float], None]) -> None:
            condition = filtered_filter(rng)
            since = DAY0 + timedelta(days=rng.randrange(DAYS // 2))
            condition["and"].append({"field": "created_on", "op": "gte", "value": since.isoformat()})
            body: dict[str, Any] = {"filter": condition, "sort": "-budget", "limit": 50}
            for _ in range(pages):
                page = await _timed(self.client, record, "POST", url, json=body, parse=True)
                if not page["next_cursor"]:
                    break
                body["cursor"] = page["next_cursor"]

        result = await run(
            "filtered + date, pages 1-5",
            max(1, count // pages),
            self.config.concurrency,
            one,
            self.config.scenario_seconds,
        )
        result.note = "3 conditions, cursor paging to page 5; latency per page request"
        return result

    async def board(self, count: int) -> Result:
        async def one(i: int, record: Callable[[float], None]) -> None:
            pipeline_id = self.setup.pipeline_ids[i % 2]
            await _timed(self.client, record, "GET", f"{API}/pipelines/{pipeline_id}/board", params={"per_stage": 20})

        result = await run("board (one pipeline)", count, self.config.concurrency, one, self.config.scenario_seconds)
        result.note = "6 stages: count + amount sum each, first 20 of each"
        return result

    async def search(self, count: int) -> Result:
        rng = _rng(self.config, "search")
        url = f"{API}/entity-types/lead/elements/search"

        async def one(i: int, record: Callable[[float], None]) -> None:
            term = company_name(rng).lower()
            body = {"filter": {"field": "title", "op": "icontains", "value": term}, "limit": 50}
            await _timed(self.client, record, "POST", url, json=body)

        result = await run("title substring search", count, self.config.concurrency, one, self.config.scenario_seconds)
        result.note = "title icontains <company name>, newest first, LIMIT 50"
        return result

    async def graphql(self, count: int) -> Result:
        """The filtered list as a typed GraphQL query with each element's stage, when the app serves /graphql."""
        rng = _rng(self.config, "graphql")
        probe = await self.client.post("/graphql", json={"query": "{ __typename }"})
        if probe.status_code == 404:
            return Result("graphql filtered list", note="skipped: the app has no /graphql endpoint yet")
        query = (
            "query($filter: LeadFilter, $sort: String) { leads(filter: $filter, sort: $sort, first: 50) "
            "{ edges { node { id title industry budget stage { code title } } } } }"
        )

        async def one(i: int, record: Callable[[float], None]) -> None:
            typed_filter = {"industry": {"eq": rng.choice(INDUSTRIES)}, "budget": {"gte": rng.randint(0, 9000)}}
            variables = {"filter": typed_filter, "sort": "-budget"}
            body = await _timed(
                self.client, record, "POST", "/graphql", json={"query": query, "variables": variables}, parse=True
            )
            if body.get("errors"):
                raise RequestFailed(json.dumps(body["errors"])[:300])

        result = await run("graphql filtered list", count, self.config.concurrency, one, self.config.scenario_seconds)
        if result.errors and not result.count:
            result.note = f"skipped: the GraphQL query did not fit the schema ({result.first_error})"
            result.errors = 0
        return result


# --- the floor: the same queries on a plain table -------------------------------------------------------------


async def build_plain_table(database_url: str, config: Config, stop: int) -> float:
    connection = await asyncpg.connect(database_url)
    try:
        t0 = time.perf_counter()
        columns = ", ".join(f"{name} {sql}" for name, sql in PLAIN_COLUMNS)
        await connection.execute(f"CREATE TABLE IF NOT EXISTS bench_plain ({columns})")
        start = await connection.fetchval("SELECT count(*) FROM bench_plain")
        names = [name for name, _ in PLAIN_COLUMNS]
        chunk = 20_000
        for first in range(start, stop, chunk):
            rows = [plain_row(lead) for lead in leads(config.seed, first, min(first + chunk, stop))]
            await connection.copy_records_to_table("bench_plain", records=rows, columns=names)
        for column in PLAIN_INDEXES:
            await connection.execute(f"CREATE INDEX IF NOT EXISTS ix_plain_{column} ON bench_plain ({column})")
        await connection.execute("VACUUM (ANALYZE) bench_plain")
        return time.perf_counter() - t0
    finally:
        await connection.close()


async def floor(database_url: str, config: Config, n: int, count: int, meter: CpuMeter) -> list[Result]:
    pool = await asyncpg.create_pool(database_url, min_size=config.concurrency, max_size=config.concurrency)
    assert pool is not None  # noqa: S101
    try:
        rng = _rng(config, "filtered")

        async def filtered(i: int, record: Callable[[float], None]) -> None:
            condition = filtered_filter(rng)["and"]
            t0 = time.perf_counter()
            rows = await pool.fetch(
                "SELECT * FROM bench_plain WHERE industry = $1 AND budget >= $2 ORDER BY budget DESC LIMIT 50",
                condition[0]["value"],
                condition[1]["value"],
            )
            record((time.perf_counter() - t0) * 1000)
            assert rows is not None  # noqa: S101

        rng_get = _rng(config, "floor-get")

        async def get(i: int, record: Callable[[float], None]) -> None:
            t0 = time.perf_counter()
            row = await pool.fetchrow(
                "SELECT * FROM bench_plain WHERE id = $1", uuid.UUID(int=rng_get.randrange(n) + 1)
            )
            record((time.perf_counter() - t0) * 1000)
            assert row is not None  # noqa: S101

        return [
            await metered(meter, run("floor: filtered list", count, config.concurrency, filtered), server=False),
            await metered(meter, run("floor: get by id", count, config.concurrency, get), server=False),
        ]
    finally:
        await pool.close()


# --- reporting ----------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    header = (
        f"{'scenario':<34} {'count':>8} {'err':>4} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"
        f" {'client CPU ms/op':>16} {'server CPU ms/op':>16} {'PG CPU ms/op':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["note"] and row["note"].startswith("skipped"):
            print(f"{row['name']:<34} {row['note']}")
            continue
        print(
            f"{row['name']:<34} {row['count']:>8} {row['errors']:>4} {row['throughput_per_s']:>9.1f} "
            f"{row['p50_ms']:>9.2f} {row['p95_ms']:>9.2f} {row['p99_ms']:>9.2f}"
            f" {_ms(row.get('client_cpu_ms_per_op')):>16} {_ms(row.get('server_cpu_ms_per_op')):>16}"
            f" {_ms(row.get('pg_cpu_ms_per_op')):>12}"
        )


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        model = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        info["cpu"] = model.split(":", 1)[1].strip()
    with contextlib.suppress(OSError, StopIteration):
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory"] = mem.split(":", 1)[1].strip()
    packages = (
        "fastapi",
        "uvicorn",
        "granian",
        "sqlalchemy",
        "asyncpg",
        "pydantic",
        "httpx",
        "aiohttp",
        "orjson",
        "uvloop",
        "httptools",
    )
    versions = {}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    info["packages"] = versions
    return info


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"


# --- the whole run ------------------------------------------------------------------------------------------------


async def _create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _workspace(database_url: str) -> tuple[str, str]:
    from app.db import make_engine, make_sessionmaker, unit_of_work
    from app.settings import Settings
    from app.workspaces import service as workspace_service

    engine = make_engine(Settings(DATABASE_URL=database_url, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0))
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            workspace, secret = await workspace_service.create_workspace(session, name="bench")
            return str(workspace.id), secret
    finally:
        await engine.dispose()


def log(config: Config, message: str) -> None:
    if not config.quiet:
        print(message, flush=True)


async def measure(
    config: Config, database_url: str, api: ApiServer, secret: str, database: str, workspace_id: str
) -> dict[str, Any]:
    report: dict[str, Any] = {"config": {k: str(v) for k, v in asdict(config).items() if k != "admin_url"}}
    report["machine"] = machine()
    report["server"] = {"http": config.server, "workers": config.workers}
    report["client"] = config.client
    report["uptime_before"] = uptime()
    connection = await asyncpg.connect(database_url)
    report["postgresql"] = await connection.fetchval("SELECT version()")
    await connection.close()
    postmaster = await find_postmaster(database_url)
    meter = CpuMeter(server_pid=api.pid, postmaster_pid=postmaster, database=database)
    report["cpu_note"] = CPU_NOTE + ("" if postmaster else " PostgreSQL runs elsewhere: its CPU is not measured.")
    base_url = api.base_url
    connections = max(config.concurrency, config.load_concurrency) + 4
    headers = {"Authorization": f"Bearer {secret}"}
    async with open_client(config.client, base_url, headers, connections, 120) as client:
        setup = await create_schema(client)
        checkpoints = [p for p in GROWTH_POINTS if p < config.n] if config.growth else []
        checkpoints.append(config.n)
        sample = Sample()
        every = max(1, config.n // SAMPLE_SIZE)
        loads: list[Result] = []
        growth: list[dict[str, Any]] = []
        loaded = 0
        scenarios = Scenarios(client, config, setup, sample)
        for point in checkpoints:
            log(config, f"loading elements {loaded:,} … {point:,} through the batch endpoint")
            loads.append(await metered(meter, load(client, config, setup, loaded, point, sample, every)))
            loaded = point
            log(config, "VACUUM (ANALYZE) …")
            seconds = await vacuum_analyze(database_url)
            log(config, f"  done in {seconds:.1f} s")
            if point != config.n:
                filtered = (await timed(meter, scenarios, "filtered", config.growth_requests)).summary()
                board = (await timed(meter, scenarios, "board", config.growth_requests)).summary()
                growth.append(_growth_row(point, filtered, board))
                log(config, f"  at {point:,}: filtered p50 {filtered['p50_ms']} ms, board p50 {board['p50_ms']} ms")
        bulk = Result("bulk load (batch endpoint)", note=f"{loads[0].note}; CPU per element", cpu=CpuUse(0.0))
        for part in loads:
            bulk.count += part.count
            bulk.seconds += part.seconds
            bulk.latencies_ms += part.latencies_ms
            bulk.cpu = (bulk.cpu or CpuUse(0.0)) + (part.cpu or CpuUse(0.0))
        log(config, f"running the scenarios ({config.requests} requests each, concurrency {config.concurrency}) …")
        results = [bulk]
        for name in ("get", "filtered", "paging", "board", "search", "graphql", "patch", "move", "create"):
            log(config, f"  {name}")
            results.append(await timed(meter, scenarios, name, config.requests))
        # The same filtered list and board for a person whose role reads only their own leads (1 in MANAGERS).
        token = await person_token(client, setup, workspace_id)
        person_headers = {"Authorization": f"Bearer {token}"}
        async with open_client(config.client, base_url, person_headers, connections, 120) as person:
            own = Scenarios(person, config, setup, sample)
            for name in ("filtered", "board"):
                log(config, f"  {name} (own scope)")
                result = await timed(meter, own, name, config.requests)
                result.name += OWN_SCOPE
                result.note = f"a person who may read their own leads only (1 in {MANAGERS}); {result.note}"
                results.append(result)
    summaries = [r.summary() for r in results]
    by_name = {s["name"]: s for s in summaries}
    if config.growth:
        growth.append(_growth_row(config.n, by_name["filtered list"], by_name["board (one pipeline)"]))
    log(config, "building the plain floor table …")
    report["floor_build_seconds"] = round(await build_plain_table(database_url, config, config.n), 1)
    floors = [r.summary() for r in await floor(database_url, config, config.n, config.requests, meter)]
    pairs = {"filtered list": (by_name["filtered list"], floors[0]), "get by id": (by_name["get by id"], floors[1])}
    report.update(
        scenarios=summaries,
        floor=floors,
        floor_ratio_p50={name: _ratio(ours, plain, "p50_ms") for name, (ours, plain) in pairs.items()},
        floor_ratio_pg_cpu={name: _ratio(ours, plain, "pg_cpu_ms_per_op") for name, (ours, plain) in pairs.items()},
        permission_cost_p50={
            name: round(by_name[name + OWN_SCOPE]["p50_ms"] / by_name[name]["p50_ms"], 2)
            for name in ("filtered list", "board (one pipeline)")
        },
        growth=growth,
        uptime_after=uptime(),
        n=config.n,
    )
    return report


OWN_SCOPE = " (own scope)"
CPU_NOTE = (
    "CPU ms per operation from /proc (utime + stime): client = the benchmark process; server = the API server's "
    "process tree (master and workers); PG = the PostgreSQL backends connected to the benchmark database; "
    "pg_server (JSON only) = the whole PostgreSQL server, every database and its background processes. "
    "Bulk load: per element."
)


def _growth_row(n: int, filtered: dict[str, Any], board: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": n,
        "filtered_p50_ms": filtered["p50_ms"],
        "board_p50_ms": board["p50_ms"],
        "filtered_server_cpu_ms_per_op": filtered["server_cpu_ms_per_op"],
        "filtered_pg_cpu_ms_per_op": filtered["pg_cpu_ms_per_op"],
    }


def _ratio(ours: dict[str, Any], plain: dict[str, Any], key: str) -> float | None:
    return round(ours[key] / plain[key], 1) if ours[key] is not None and plain[key] else None


def print_report(report: dict[str, Any]) -> None:
    print_table(f"Stageflow over HTTP, {report['n']:,} elements", report["scenarios"])
    print_table("Floor: the same queries on a plain table, asyncpg straight", report["floor"])
    print("\np50 over the floor: " + ", ".join(f"{k} {v}×" for k, v in report["floor_ratio_p50"].items()))
    print("PG CPU over the floor: " + ", ".join(f"{k} {v}×" for k, v in report["floor_ratio_pg_cpu"].items()))
    cost = report.get("permission_cost_p50", {})
    print("p50 own scope over admin: " + ", ".join(f"{k} {v}×" for k, v in cost.items()))
    if report["growth"]:
        print(f"\n{'elements':>10} {'filtered p50 ms':>16} {'board p50 ms':>13} {'filtered server/PG CPU ms/op':>29}")
        for row in report["growth"]:
            cpu = f"{_ms(row['filtered_server_cpu_ms_per_op'])} / {_ms(row['filtered_pg_cpu_ms_per_op'])}"
            print(f"{row['n']:>10,} {row['filtered_p50_ms']:>16.2f} {row['board_p50_ms']:>13.2f} {cpu:>29}")
    print(f"\nload before: {report['uptime_before']}\nload after:  {report['uptime_after']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    name = f"stageflow_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_database(config.admin_url, name))
    database_url = _with_database(config.admin_url, name)
    log(config, f"database {name} created; migrating …")
    try:
        from app.cli import run_migrations
        from app.settings import to_asyncpg_url

        run_migrations(to_asyncpg_url(database_url))
        workspace_id, secret = asyncio.run(_workspace(database_url))
        with api_server(database_url, config.workers, config.concurrency, config.server) as api:
            log(config, f"API on {api.base_url} ({config.server}, {config.workers} workers)")
            report = asyncio.run(measure(config, database_url, api, secret, name, workspace_id))
        report["command"] = "python3 -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
        config.out.write_text(json.dumps(report, indent=2) + "\n")
        print_report(report)
        log(config, f"\nresults written to {config.out}")
        return report
    finally:
        if config.keep:
            log(config, f"kept database {name}")
        else:
            asyncio.run(_drop_database(config.admin_url, name))
