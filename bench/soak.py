"""Soak: a steady load for a long time, to see that memory stays flat and retention keeps the tables bounded.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        python3 -m bench.soak --minutes 30 --rate 10

Creates a scratch database (flushes the Redis database it is given), starts the API (`stageflow serve`, uvicorn) and
N workers (`stageflow worker`) with a short retention (`--retention-minutes`, pruned every minute), then drives a
steady open-loop rate of element creates and moves through HTTP. One rule runs on every create: `set_fields`,
`create_task`, `call_webhook` to a receiver in this process. Every `--sample-seconds` it samples the RSS of the API
and worker processes, and the row count and `pg_total_relation_size` of the tables retention prunes, prints them as
a table, and writes them as JSON. At the end it compares the last third of the samples with the middle third and
says whether each is flat. The outbox is never pruned within the automation engine's sweep window (15 minutes):
it levels off only after that. Pruned rows become reusable space only once vacuumed: where the server runs without
autovacuum, the soak vacuums these tables before each sample (`--vacuum` / `--no-vacuum` to choose). The scratch
database is dropped at the end.
"""

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

from app.automation.engine import EVENT_SWEEP_WINDOW
from app.cli import run_migrations
from app.db import make_engine, make_sessionmaker, unit_of_work
from app.settings import Settings
from app.workspaces import service as workspace_service
from bench import cpu
from bench.automation import ROOT, start_worker
from bench.runner import _create_database, _drop_database, _with_database

TABLES = (
    "automation_runs",
    "webhook_deliveries",
    "webhook_attempts",
    "outbox_events",
    "automation_handled_events",
    "timeline_entries",
)
MEMORY_FLAT = 0.10  # last third over middle third: at most +10 % RSS
TABLE_FLAT = 0.20  # and +20 % rows or bytes (a pass every minute makes the tables saw-tooth)
MB = 1024 * 1024


# --- a webhook receiver ----------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server that answers 200 to everything and counts what it got."""

    received: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                self.received += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


# --- processes -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_api(settings: Settings, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        REDIS_URL=settings.REDIS_URL or "",
        LOG_LEVEL="WARNING",
        DB_POOL_SIZE="10",
    )
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb(pid: int, stats: dict[int, cpu.Stat]) -> float:
    """The process's resident memory with its children's (uvicorn's worker processes), from /proc/<pid>/statm."""
    total = 0
    for member in {pid} | cpu.descendants(pid, stats):
        try:
            total += int((cpu.PROC / str(member) / "statm").read_bytes().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total / MB


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# --- setup and load --------------------------------------------------------------------------------------------


async def _workspace_key(settings: Settings) -> str:
    engine = make_engine(settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            _, key = await workspace_service.create_workspace(session, name="soak")
        return key
    finally:
        await engine.dispose()


async def _wait_ready(http: httpx.AsyncClient, base: str, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            if (await http.get(f"{base}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not become ready (see .stageflow/soak.log)")
        await asyncio.sleep(0.5)


async def _setup(http: httpx.AsyncClient, receiver_url: str) -> list[str]:
    """The `lead` type, a field, and the rule; returns the default pipeline's stage codes."""

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await http.post(path, json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        answer: dict[str, Any] = response.json()
        return answer

    await post("/entity-types", {"code": "lead", "title": "Lead"})
    await post("/entity-types/lead/fields", {"code": "touched", "type": "integer"})
    await post(
        "/automation/rules",
        {
            "name": "soak",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [
                {"type": "set_fields", "params": {"values": {"touched": 1}}},
                {"type": "create_task", "params": {"title": "Call {{ title }}", "due_in_hours": 4}},
                {"type": "webhook", "params": {"url": receiver_url}},
            ],
        },
    )
    pipelines = (await http.get("/entity-types/lead/pipelines")).json()["items"]
    default = next(p for p in pipelines if p["is_default"])
    return [stage["code"] for stage in default["stages"]]


@dataclass
class Load:
    """Open loop: one operation every 1/rate seconds, alternately a create and a move of a recent element."""

    http: httpx.AsyncClient
    stages: list[str]
    rate: float
    concurrency: int = 64
    done: int = 0
    errors: int = 0
    recent: deque[tuple[str, int]] = field(default_factory=lambda: deque(maxlen=2000))
    last_error: str = ""

    async def _one(self, number: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                if number % 2 == 0 or not self.recent:
                    response = await self.http.post("/entity-types/lead/elements", json={"title": f"lead {number}"})
                    ok = response.status_code == 201
                    if ok:
                        self.recent.append((response.json()["id"], 0))
                else:
                    element_id, stage = self.recent.popleft()
                    stage = (stage + 1) % len(self.stages)
                    response = await self.http.post(
                        f"/elements/{element_id}/move", json={"stage_code": self.stages[stage]}
                    )
                    ok = response.status_code == 200
                    if ok:
                        self.recent.append((element_id, stage))
                if ok:
                    self.done += 1
                else:
                    self.errors += 1
                    self.last_error = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                self.errors += 1
                self.last_error = repr(exc)

    async def run(self, seconds: float) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        started = time.monotonic()
        number = 0
        tasks: set[asyncio.Task[None]] = set()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(max(0.0, started + number / self.rate - time.monotonic()))
            task = asyncio.create_task(self._one(number, gate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
        if tasks:
            await asyncio.gather(*tasks)


# --- sampling --------------------------------------------------------------------------------------------------

SIZES_SQL = " UNION ALL ".join(
    f"SELECT '{t}', (SELECT count(*) FROM {t}), pg_total_relation_size('{t}')" for t in TABLES
)
BACKLOG_SQL = (
    "SELECT (SELECT count(*) FROM automation_runs WHERE status IN ('queued', 'running')),"
    " (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),"
    " (SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL)"
)


async def _sample(
    connection: asyncpg.Connection,
    started: float,
    api: subprocess.Popen[bytes],
    workers: list[subprocess.Popen[bytes]],
    load: Load,
    receiver: Receiver,
) -> dict[str, Any]:
    stats = await asyncio.to_thread(cpu.read_all)
    rows = await connection.fetch(SIZES_SQL)
    backlog = await connection.fetchrow(BACKLOG_SQL)
    return {
        "t": round(time.monotonic() - started),
        "api_rss_mb": round(_rss_mb(api.pid, stats), 1),
        "worker_rss_mb": [round(_rss_mb(w.pid, stats), 1) for w in workers],
        "rows": {row[0]: row[1] for row in rows},
        "bytes": {row[0]: row[2] for row in rows},
        "open_runs": backlog[0],
        "pending_deliveries": backlog[1],
        "undispatched": backlog[2],
        "ops": load.done,
        "errors": load.errors,
        "webhooks_received": receiver.received,
    }


SHORT = {
    "automation_runs": "runs",
    "webhook_deliveries": "deliv",
    "webhook_attempts": "attempts",
    "outbox_events": "outbox",
    "automation_handled_events": "handled",
    "timeline_entries": "timeline",
}


def _header(workers: int) -> str:
    cells = ["t(s)", "api MB"] + [f"w{i + 1} MB" for i in range(workers)]
    cells += [f"{SHORT[t]} rows/MB" for t in TABLES] + ["open runs", "pend dlv", "ops", "err", "hooks"]
    return " | ".join(cells)


def _line(sample: dict[str, Any]) -> str:
    cells = [str(sample["t"]), f"{sample['api_rss_mb']:.0f}"] + [f"{rss:.0f}" for rss in sample["worker_rss_mb"]]
    cells += [f"{sample['rows'][t]}/{sample['bytes'][t] / MB:.1f}" for t in TABLES]
    cells += [str(sample[k]) for k in ("open_runs", "pending_deliveries", "ops", "errors", "webhooks_received")]
    return " | ".join(cells)


def _growth(pick: Any, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> float:
    """The mean of `after` over the mean of `before`, minus one."""
    early = statistics.mean(pick(s) for s in before)
    late = statistics.mean(pick(s) for s in after)
    return (late - early) / early if early else (0.0 if late == 0 else float("inf"))


def _verdicts(samples: list[dict[str, Any]], retention_minutes: float) -> list[dict[str, Any]]:
    """Memory: the last third of the samples over the middle third. A table: once it can have settled (its retention,
    then a pass every minute: two more), the second half of those samples over the first; until then, no verdict."""
    third = len(samples) // 3
    if not third:
        return []
    measures: list[tuple[str, Any, float, float]] = [("api RSS", lambda s: s["api_rss_mb"], MEMORY_FLAT, 0.0)]
    for index in range(len(samples[0]["worker_rss_mb"])):
        measures.append((f"worker {index + 1} RSS", lambda s, i=index: s["worker_rss_mb"][i], MEMORY_FLAT, 0.0))
    for table in TABLES:
        keep = retention_minutes
        if table in ("outbox_events", "automation_handled_events"):
            keep = max(keep, EVENT_SWEEP_WINDOW.total_seconds() / 60)
        settle = (keep + 2) * 60
        measures.append((f"{table} rows", lambda s, t=table: s["rows"][t], TABLE_FLAT, settle))
        measures.append((f"{table} bytes", lambda s, t=table: s["bytes"][t], TABLE_FLAT, settle))
    verdicts = []
    for name, pick, limit, settle in measures:
        if settle == 0:
            before, after = samples[third : 2 * third], samples[2 * third :]
        else:
            settled = [s for s in samples if s["t"] >= settle]
            half = len(settled) // 2
            before, after = settled[:half], settled[half:]
        if len(before) < 2:
            verdicts.append({"measure": name, "growth": None, "limit": limit, "flat": None, "from_s": settle})
            continue
        growth = _growth(pick, before, after)
        verdicts.append(
            {"measure": name, "growth": round(growth, 4), "limit": limit, "flat": growth <= limit, "from_s": settle}
        )
    return verdicts


# --- main ------------------------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    name = f"stageflow_soak_{os.getpid()}"
    admin_url = base.database_url.replace("postgresql+asyncpg://", "postgresql://")
    await _create_database(admin_url, name)
    settings = Settings(DATABASE_URL=_with_database(admin_url, name), REDIS_URL=base.REDIS_URL)
    log = ROOT / ".stageflow" / "soak.log"
    log.parent.mkdir(exist_ok=True)
    days = args.retention_minutes / (24 * 60)
    # The children inherit these (bench.automation's worker starter copies this environment).
    os.environ.update(
        RETENTION_RUNS_DAYS=str(days),
        RETENTION_DELIVERIES_DAYS=str(days),
        RETENTION_OUTBOX_DAYS=str(days),
        RETENTION_TIMELINE_DAYS=str(days),
        RETENTION_PRUNE_EVERY_MINUTES="1",
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        JWT_SECRET=os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48),
    )
    processes: list[subprocess.Popen[bytes]] = []
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver_port = server.sockets[0].getsockname()[1]
    try:
        await asyncio.to_thread(run_migrations, settings.database_url)
        redis = Redis.from_url(settings.REDIS_URL or "")
        await redis.flushdb()
        await redis.aclose()
        key = await _workspace_key(settings)
        port = _free_port()
        api = _start_api(settings, port, args.api_workers, log)
        processes.append(api)
        plain_url = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        workers = [start_worker(plain_url, settings.REDIS_URL or "", log) for _ in range(args.workers)]
        processes += workers
        base_url = f"http://127.0.0.1:{port}"
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=f"{base_url}/api/v1", headers=headers, limits=limits, timeout=30) as http:
            await _wait_ready(http, base_url)
            stages = await _setup(http, f"http://127.0.0.1:{receiver_port}/hook")
            load = Load(http, stages, args.rate)
            connection = await asyncpg.connect(_with_database(admin_url, name))
            autovacuum = await connection.fetchval("SHOW autovacuum")
            # Pruned rows leave dead tuples that only VACUUM makes reusable: without it the tables' bytes grow at any
            # row count. Where the server has autovacuum off (a benchmark box), the soak stands in for it.
            vacuum = args.vacuum if args.vacuum is not None else autovacuum == "off"
            samples: list[dict[str, Any]] = []
            started = time.monotonic()
            print(
                f"soak: {args.minutes} min at {args.rate}/s (half creates, half moves), API {args.api_workers} "
                f"process(es), {args.workers} workers, retention {args.retention_minutes} min (outbox: at least "
                f"{EVENT_SWEEP_WINDOW.total_seconds() / 60:.0f} min), a pass every minute; the server's autovacuum "
                f"is {autovacuum}{': the soak runs VACUUM on these tables before each sample' if vacuum else ''}"
            )
            print(_header(args.workers), flush=True)
            driver = asyncio.create_task(load.run(args.minutes * 60))
            try:
                while not driver.done():
                    await asyncio.wait({driver}, timeout=args.sample_seconds)
                    if vacuum:
                        await connection.execute(f"VACUUM (ANALYZE) {', '.join(TABLES)}")
                    sample = await _sample(connection, started, api, workers, load, receiver)
                    samples.append(sample)
                    print(_line(sample), flush=True)
                await driver
            finally:
                await connection.close()
    finally:
        _stop(processes)
        server.close()
        await _drop_database(admin_url, name)
    verdicts = _verdicts(samples, args.retention_minutes)
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "api_workers": args.api_workers,
        "workers": args.workers,
        "retention_minutes": args.retention_minutes,
        "autovacuum": autovacuum,
        "soak_vacuums": vacuum,
        "ops": load.done,
        "errors": load.errors,
        "last_error": load.last_error,
        "webhooks_received": receiver.received,
        "samples": samples,
        "verdicts": verdicts,
    }
    print("\nmemory: last third over middle third; tables: second half over first half once settled (means)")
    for verdict in verdicts:
        if verdict["flat"] is None:
            needs = f"{verdict['from_s'] / 60:.0f} min"
            print(f"  {verdict['measure']:<34} not settled: it needs a run well past {needs}")
            continue
        window = f"from {verdict['from_s'] / 60:.0f} min" if verdict["from_s"] else "thirds"
        print(
            f"  {verdict['measure']:<34} {verdict['growth'] * 100:+7.1f} %  "
            f"{'flat' if verdict['flat'] else 'GROWING'} (limit +{verdict['limit'] * 100:.0f} %, {window})"
        )
    if load.errors:
        print(f"errors: {load.errors}, the last: {load.last_error}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=10, help="operations per second (half creates, half moves)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--api-workers", type=int, default=1, help="API processes (uvicorn --workers)")
    parser.add_argument("--retention-minutes", type=float, default=2, help="how long pruned rows are kept")
    parser.add_argument("--sample-seconds", type=float, default=30)
    parser.add_argument(
        "--vacuum",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VACUUM the pruned tables before each sample (default: only when the server's autovacuum is off)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".stageflow" / "soak.json", help="where the JSON goes")
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
