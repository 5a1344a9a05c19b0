"""`python3 -m bench --scenario automation`: rule runs per second and the time from a change to its finished action.

A fresh database, the API served as in production (`stageflow serve`) and N worker processes (`stageflow worker`),
the leads type of the read benchmark with three enabled rules on `element.created`, each with a condition (true for
every generated lead, so every run does its work):

- qualify: `set_fields` (two values on the element);
- follow up: `create_task` (a call task for the assignee, its title a template);
- notify: a signed webhook to a local receiver (`call_webhook`; the receiver checks every signature).

Two phases, elements created through the batch endpoint:

1. throughput: `--n` elements as fast as the API takes them; rule runs finished per second from the first request
   to the last run's end, and the CPU each run cost in the workers, the API and PostgreSQL;
2. latency: a steady rate at `--load-share` (70 %) of that throughput for `--seconds`, in small batches; the time
   from the element's commit to its run's end, and to the webhook's arrival at the receiver (p50 / p95 / p99).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from app.kit.signing import verify
from bench.cpu import CpuMeter, read_all, tree_cpu_ms
from bench.data import leads
from bench.driver import percentile

ROOT = Path(__file__).resolve().parent.parent
RULES_PER_ELEMENT = 3
API = "/api/v1"
LOCAL_RECEIVER = "127.0.0.1/32"  # webhooks to private addresses are refused unless allowed


# --- the receiver -------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server for the rules' webhooks: checks each signature, notes when each element's arrived."""

    secret: str
    port: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)  # element id -> first arrival (epoch seconds)
    deliveries: int = 0
    bad_signatures: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                arrived = time.time()
                self._note(headers, body, arrived)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _note(self, headers: dict[str, str], body: bytes, arrived: float) -> None:
        self.deliveries += 1
        message_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
        if not verify(self.secret, message_id, int(timestamp), body, headers.get("webhook-signature", "")):
            self.bad_signatures += 1
        element = (orjson.loads(body).get("data") or {}).get("element") or {}
        if element.get("id"):
            self.arrivals.setdefault(element["id"], arrived)


# --- processes ------------------------------------------------------------------------------------------------------


def start_worker(database_url: str, redis_url: str, log: Path, **env_overrides: str) -> subprocess.Popen[bytes]:
    """`stageflow worker` (arq worker and outbox dispatcher) in its own process group, output to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        LOG_LEVEL="WARNING",
        ENVIRONMENT="production",
        WEBHOOK_ALLOWED_NETWORKS=LOCAL_RECEIVER,
        **env_overrides,
    )
    env.setdefault("JWT_SECRET", secrets.token_urlsafe(48))
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def workers(count: int, database_url: str, redis_url: str, log: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [start_worker(database_url, redis_url, log) for _ in range(count)]
    try:
        yield started
    finally:
        stop_processes(started)


def trees_cpu_ms(pids: list[int]) -> float:
    stats = read_all()
    return sum(tree_cpu_ms(pid, stats) or 0.0 for pid in pids)


# --- the scenario ---------------------------------------------------------------------------------------------------


async def create_rules(client: httpx.AsyncClient, receiver: Receiver) -> None:
    from bench.runner import _ok

    await _ok(await client.post(f"{API}/entity-types/lead/fields", json={"code": "qualified", "type": "boolean"}))
    await _ok(await client.post(f"{API}/entity-types/lead/fields", json={"code": "touched_by", "type": "string"}))
    every_lead = {"field": "budget", "op": "gte", "value": 0}
    rules: list[dict[str, Any]] = [
        {
            "name": "qualify",
            "actions": [{"type": "set_fields", "params": {"values": {"qualified": True, "touched_by": "qualify"}}}],
        },
        {
            "name": "follow up",
            "actions": [{"type": "create_task", "params": {"title": "Call {{ title }}", "due_in_hours": 4}}],
        },
        {
            "name": "notify",
            "actions": [{"type": "webhook", "params": {"url": receiver.url, "secret": receiver.secret}}],
        },
    ]
    for rule in rules:
        body = {**rule, "entity_type": "lead", "trigger": {"type": "element.created"}, "condition": every_lead}
        await _ok(await client.post(f"{API}/automation/rules", json=body))


class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0

    def say(self, message: str, *, every: float = 0.0) -> None:
        now = time.monotonic()
        if not self.quiet and now - self.last >= every:
            self.last = now
            print(message, flush=True)


async def finished_runs(connection: asyncpg.Connection) -> tuple[int, int, int]:
    """(finished, failed or skipped, delivered webhooks)."""
    row = await connection.fetchrow(
        "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL),"
        " count(*) FILTER (WHERE status IN ('failed', 'skipped')),"
        " (SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded') FROM automation_runs"
    )
    assert row is not None  # noqa: S101
    return int(row[0]), int(row[1]), int(row[2])


async def wait_for_runs(
    connection: asyncpg.Connection, expected: int, progress: Progress, *, patience: float
) -> tuple[float, int]:
    """Poll until `expected` runs have finished and their webhooks arrived; returns (when, failed or skipped)."""
    deadline = time.monotonic() + patience
    while True:
        finished, bad, delivered = await finished_runs(connection)
        progress.say(f"  runs finished {finished:,} / {expected:,}, webhooks delivered {delivered:,}", every=5)
        if (finished >= expected and delivered >= expected // RULES_PER_ELEMENT) or time.monotonic() > deadline:
            return time.time(), bad
        await asyncio.sleep(0.25)


async def wait_for_quiet(
    connection: asyncpg.Connection, redis_url: str, progress: Progress, *, patience: float = 300
) -> None:
    """Until every outbox event is dispatched and handled, no delivery is pending and no job is due in the queue."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    deadline = time.monotonic() + patience
    try:
        while time.monotonic() < deadline:
            jobs = int(await redis.zcount("arq:queue", "-inf", time.time() * 1000))
            left = jobs + await connection.fetchval(
                "SELECT (SELECT count(*) FROM outbox_events o WHERE o.dispatched_at IS NULL OR NOT EXISTS"
                " (SELECT 1 FROM automation_handled_events h WHERE h.event_id = o.event_id))"
                " + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')"
            )
            if left <= 2:  # the workers' own ticks may be due
                return
            progress.say(f"  waiting for the burst's tail: {left:,} events, deliveries or jobs left", every=5)
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


async def post_batch(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> None:
    response = await client.post(
        f"{API}/entity-types/lead/elements/batch",
        content=orjson.dumps({"items": [{"op": "create", "data": body} for body in bodies]}),
        headers={"content-type": "application/json"},
        timeout=300,
    )
    if response.status_code >= 400:
        raise RuntimeError(f"batch create failed: {response.status_code} {response.text[:500]}")


async def database_counts(connection: asyncpg.Connection) -> dict[str, int]:
    """Commits, rollbacks and deadlocks so far in the benchmark's database (the statistics lag by up to 0.5 s)."""
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    row = await connection.fetchrow(
        "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    assert row is not None  # noqa: S101
    return {"commits": int(row[0]), "rollbacks": int(row[1]), "deadlocks": int(row[2])}


@dataclass
class Phase:
    elements: int = 0
    runs: int = 0
    seconds: float = 0.0
    failed_or_skipped: int = 0
    cpu_ms: dict[str, float | None] = field(default_factory=dict)
    run_ms: list[float] = field(default_factory=list)
    webhook_ms: list[float] = field(default_factory=list)
    offered_per_s: float | None = None
    database: dict[str, int] = field(default_factory=dict)  # pg_stat_database counters over the phase

    def summary(self, name: str) -> dict[str, Any]:
        def pcts(values: list[float]) -> dict[str, float | None]:
            ordered = sorted(values)
            return {f"p{q}_ms": round(percentile(ordered, q), 1) if ordered else None for q in (50, 95, 99)}

        runs_per_s = self.runs / self.seconds if self.seconds else 0.0
        return {
            "name": name,
            "elements": self.elements,
            "runs": self.runs,
            "seconds": round(self.seconds, 2),
            "runs_per_s": round(runs_per_s, 1),
            "offered_runs_per_s": None if self.offered_per_s is None else round(self.offered_per_s, 1),
            "failed_or_skipped": self.failed_or_skipped,
            "run_latency": pcts(self.run_ms),
            "webhook_latency": pcts(self.webhook_ms),
            "cpu_ms_per_run": {side: _per(ms, self.runs) for side, ms in self.cpu_ms.items()},
            "database": self.database,
            "transactions_per_run": _per(float(self.database.get("commits", 0)), self.runs),
        }


def _per(total_ms: float | None, count: int) -> float | None:
    return None if total_ms is None or not count else round(total_ms / count, 2)


class Scenario:
    def __init__(
        self,
        client: httpx.AsyncClient,
        connection: asyncpg.Connection,
        meter: CpuMeter,
        worker_pids: list[int],
        receiver: Receiver,
        setup: Any,
        progress: Progress,
        seed: int,
    ) -> None:
        self.client = client
        self.connection = connection
        self.meter = meter
        self.worker_pids = worker_pids
        self.receiver = receiver
        self.setup = setup
        self.progress = progress
        self.seed = seed
        self.created = 0
        self.runs_before = 0

    def bodies(self, count: int) -> list[dict[str, Any]]:
        generated = leads(self.seed, self.created, self.created + count)
        made = [lead.body(self.setup.pipeline_ids, self.setup.user_ids) for lead in generated]
        self.created += count
        return made

    async def measured(self, phase: Phase, work: Any, expected_runs: int) -> None:
        """Run `work`, wait for its runs, and fill in the time, the CPU and the latencies."""
        workers_before = trees_cpu_ms(self.worker_pids)
        database_before = await database_counts(self.connection)
        started = time.time()
        with self.meter.measure() as reading:
            await work
            ended, bad = await wait_for_runs(
                self.connection, self.runs_before + expected_runs, self.progress, patience=600
            )
        use = reading.use
        phase.seconds = ended - started
        phase.runs = expected_runs
        phase.failed_or_skipped = bad
        phase.cpu_ms = {
            "worker": trees_cpu_ms(self.worker_pids) - workers_before,
            "api": use.server_ms if use else None,
            "postgres": use.pg_ms if use else None,
        }
        self.runs_before += expected_runs
        database_after = await database_counts(self.connection)
        phase.database = {key: database_after[key] - database_before[key] for key in database_after}
        rows = await self.connection.fetch(
            "SELECT e.id, extract(epoch FROM e.created_at) AS created,"
            " extract(epoch FROM r.finished_at) AS finished"
            " FROM automation_runs r JOIN elements e ON e.id = r.element_id"
            " WHERE e.created_at >= to_timestamp($1)",
            started,
        )
        phase.run_ms = [(float(r["finished"]) - float(r["created"])) * 1000 for r in rows if r["finished"]]
        created = {str(r["id"]): float(r["created"]) for r in rows}
        phase.webhook_ms = [
            (arrived - created[element]) * 1000
            for element, arrived in self.receiver.arrivals.items()
            if element in created
        ]

    async def throughput(self, n: int, batch: int, concurrency: int) -> Phase:
        phase = Phase(elements=n)
        batches = [min(batch, n - start) for start in range(0, n, batch)]
        queue = [self.bodies(size) for size in batches]

        async def sender() -> None:
            while queue:
                await post_batch(self.client, queue.pop())

        async def load() -> None:
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            self.progress.say(f"  {n:,} elements created; waiting for their runs")

        await self.measured(phase, load(), n * RULES_PER_ELEMENT)
        return phase

    async def steady(self, runs_per_s: float, seconds: float, batch: int) -> Phase:
        elements_per_s = runs_per_s / RULES_PER_ELEMENT
        total = max(batch, int(elements_per_s * seconds) // batch * batch)
        phase = Phase(elements=total, offered_per_s=runs_per_s)

        async def load() -> None:
            started = time.monotonic()
            in_flight: set[asyncio.Task[None]] = set()
            for sent in range(0, total, batch):
                await asyncio.sleep(max(0.0, started + sent / elements_per_s - time.monotonic()))
                task = asyncio.create_task(post_batch(self.client, self.bodies(batch)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                self.progress.say(f"  {sent:,} / {total:,} elements sent", every=5)
            await asyncio.gather(*in_flight)

        await self.measured(phase, load(), total * RULES_PER_ELEMENT)
        return phase


async def measure(args: Any, database_url: str, database: str, api: Any, secret: str) -> dict[str, Any]:
    from bench.runner import create_schema, find_postmaster, machine, uptime

    progress = Progress(args.quiet)
    receiver = Receiver(secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    await receiver.start()
    log = ROOT / ".stageflow" / "bench-workers.log"
    log.parent.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "scenario": "automation",
        "machine": machine(),
        "uptime_before": uptime(),
        "config": {k: str(v) for k, v in vars(args).items() if k != "admin_url"},
    }
    headers = {"Authorization": f"Bearer {secret}"}
    connection = await asyncpg.connect(database_url)
    try:
        async with httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=120) as client:
            setup = await create_schema(client)
            await create_rules(client, receiver)
            with workers(args.worker_processes, database_url, args.redis_url, log) as started:
                await asyncio.sleep(3)  # imports and the first poll
                meter = CpuMeter(
                    server_pid=api.pid, postmaster_pid=await find_postmaster(database_url), database=database
                )
                scenario = Scenario(
                    client, connection, meter, [p.pid for p in started], receiver, setup, progress, args.seed
                )
                phases = []
                if args.rate is None:
                    progress.say(f"throughput: {args.n:,} elements in batches of {args.batch_size}, then their runs")
                    burst = await scenario.throughput(args.n, args.batch_size, args.load_concurrency)
                    phases.append(burst.summary("throughput"))
                    best = burst.runs / burst.seconds
                    progress.say(f"  {best:,.0f} runs/s")
                    rate = best * args.load_share
                    # The burst leaves follow-up events behind (set_fields' element.updated, …): the steady phase
                    # starts once they are handled, or it would measure the burst's tail too.
                    await wait_for_quiet(connection, args.redis_url, progress)
                else:
                    rate = args.rate
                progress.say(f"latency: {rate:,.0f} runs/s for {args.seconds:g} s")
                steady = await scenario.steady(rate, args.seconds, args.steady_batch)
                phases.append(steady.summary("latency" if args.rate else f"latency at {args.load_share:.0%}"))
        report["phases"] = phases
        report["receiver"] = {"deliveries": receiver.deliveries, "bad_signatures": receiver.bad_signatures}
        report["uptime_after"] = uptime()
    finally:
        await connection.close()
        await receiver.stop()
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{'phase':<16} {'runs':>7} {'runs/s':>8} {'offered':>8} {'run p50/p95/p99 ms':>22}"
        f" {'webhook p50/p95/p99 ms':>24} {'CPU ms/run worker/API/PG':>26}"
    )
    for phase in report["phases"]:
        run, hook, cpu = phase["run_latency"], phase["webhook_latency"], phase["cpu_ms_per_run"]
        offered = "-" if phase["offered_runs_per_s"] is None else f"{phase['offered_runs_per_s']:.0f}"
        print(
            f"{phase['name']:<16} {phase['runs']:>7,} {phase['runs_per_s']:>8.0f} {offered:>8}"
            f" {_triple(run):>22} {_triple(hook):>24}"
            f" {_cpu(cpu):>26}"
        )
        print(f"  database: {phase['database']}, {phase['transactions_per_run']} commits per run")
        if phase["failed_or_skipped"]:
            print(f"  {phase['failed_or_skipped']} runs failed or were skipped")
    receiver = report["receiver"]
    print(f"\nwebhooks received: {receiver['deliveries']:,}, bad signatures: {receiver['bad_signatures']}")
    print(f"load before: {report['uptime_before']}\nload after:  {report['uptime_after']}")


def _triple(values: dict[str, float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values.values())


def _cpu(values: dict[str, float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.2f}" for v in values.values())


def parse_args(argv: list[str]) -> argparse.Namespace:
    from app.cli import DEFAULT_SERVER, HttpServer
    from bench.runner import DEFAULT_ADMIN_URL

    parser = argparse.ArgumentParser(prog="python3 -m bench --scenario automation", description=__doc__)
    parser.add_argument("--n", type=int, default=6000, help="elements of the throughput phase (3 runs each)")
    parser.add_argument("--batch-size", type=int, default=100, help="elements per batch request (throughput)")
    parser.add_argument("--load-concurrency", type=int, default=2, help="batch requests in flight (throughput)")
    parser.add_argument("--load-share", type=float, default=0.7, help="the latency phase's share of the throughput")
    parser.add_argument("--seconds", type=float, default=30, help="length of the latency phase")
    parser.add_argument("--rate", type=float, help="only the latency phase, at this many runs/s")
    parser.add_argument("--steady-batch", type=int, default=5, help="elements per batch request (latency)")
    parser.add_argument("--worker-processes", type=int, default=2, help="`stageflow worker` processes")
    parser.add_argument("--workers", type=int, default=2, help="API server worker processes")
    parser.add_argument("--server", choices=[s.value for s in HttpServer], default=DEFAULT_SERVER.value)
    parser.add_argument("--seed", type=int, default=47)
    parser.add_argument("--out", type=Path, default=Path("bench-automation.json"), help="JSON results file")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL URL used to create and drop the benchmark database (env BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        help="Redis for the queue; its database is flushed first (env BENCH_REDIS_URL)",
    )
    parser.add_argument(
        "--api-dispatches",
        action="store_true",
        help="run the outbox dispatcher in the API processes too (by default only the workers dispatch)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the workers (own sessions) are stopped and the database dropped


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from app.cli import run_migrations
    from app.settings import to_asyncpg_url
    from bench.runner import _create_database, _drop_database, _with_database, _workspace, api_server

    name = f"stageflow_bench_auto_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_database(args.admin_url, name))
    database_url = _with_database(args.admin_url, name)
    flush_redis(args.redis_url)
    try:
        run_migrations(to_asyncpg_url(database_url))
        _, secret = asyncio.run(_workspace(database_url))
        # With Redis, as in production: the API's outbox dispatchers hand events to the workers too.
        api_env = {"REDIS_URL": args.redis_url, "WEBHOOK_ALLOWED_NETWORKS": LOCAL_RECEIVER}
        if not args.api_dispatches:
            api_env["OUTBOX_DISPATCHER_ENABLED"] = "false"  # the workers' dispatchers hand events on
        with api_server(database_url, args.workers, 16, args.server, extra_env=api_env) as api:
            report = asyncio.run(measure(args, database_url, name, api, secret))
        report["command"] = "python3 -m bench " + " ".join(sys.argv[1:])
        report["date"] = datetime.now().isoformat(timespec="seconds")
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print_report(report)
        print(f"\nresults written to {args.out}")
        return report
    finally:
        asyncio.run(_drop_database(args.admin_url, name))


def flush_redis(url: str) -> None:
    """The benchmark's Redis database starts empty: no queue or dedup keys from an earlier run."""
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
