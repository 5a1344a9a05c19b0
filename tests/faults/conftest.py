"""The fault suite's own services (PostgreSQL and Redis on their own ports, so restarting them disturbs nobody), the
processes it kills, the receiver, and the report table printed at the end and written to .stageflow/faults-report.md.

FAULTS_LONG=1 runs the longer form: more faults, more load.
"""

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import app.models  # noqa: F401  (every mapper registered before the workspace is created)
from app.cli import run_migrations
from app.db import make_engine, make_sessionmaker, unit_of_work
from app.settings import Settings
from app.workspaces import service as workspace_service
from tests.faults.stack import (
    ROOT,
    Postgres,
    Process,
    Receiver,
    RedisServer,
    api_process,
    receiver,
    service_env,
    worker_process,
)
from tests.faults.world import Row, World

LONG = os.environ.get("FAULTS_LONG", "") not in ("", "0")
REPORT_PATH = ROOT / ".stageflow" / "faults-report.md"
ROWS: list[Row] = []
STARTED = time.monotonic()  # at collection: the suite's wall time goes in the report


def scale(bounded: int, long: int) -> int:
    return long if LONG else bounded


@dataclass
class Cluster:
    postgres: Postgres
    redis: RedisServer
    database_url: str
    apis: list[Process]
    workers: list[Process]
    receiver: Receiver

    @property
    def api_urls(self) -> list[str]:
        return [api.health_url or "" for api in self.apis]

    def ensure_running(self) -> None:
        """Bring back whatever an earlier test left dead, all at once."""
        dead = [p for p in [*self.apis, *self.workers] if not p.alive]
        for process in dead:
            process.start(wait=False)
        for process in dead:
            process.wait_ready()


# Per module, not per session: its idle workers and API processes would otherwise run beside every later test.
@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    postgres = Postgres()
    redis_server = RedisServer()
    try:
        database_url = postgres.url.rsplit("/", 1)[0] + "/stageflow"

        async def create_database() -> None:
            connection = await asyncpg.connect(postgres.url)
            try:
                await connection.execute("CREATE DATABASE stageflow")
            finally:
                await connection.close()

        # A thread: the session's event loop may already run in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create_database()).result()
            pool.submit(run_migrations, Settings(DATABASE_URL=database_url).database_url).result()
        env = service_env(database_url, redis_server.url, JWT_SECRET=secrets.token_urlsafe(48))
        apis = [api_process(f"api-{i}", env) for i in range(3)]
        workers = [worker_process(f"worker-{i}", env) for i in range(2)]
        with receiver() as hooks:
            state = Cluster(postgres, redis_server, database_url, apis, workers, hooks)
            state.ensure_running()
            try:
                yield state
            finally:
                for process in [*apis, *workers]:
                    process.stop()
    finally:
        redis_server.close()
        postgres.close()


@pytest.fixture
async def world(cluster: Cluster) -> World:
    """A fresh workspace with a `lead` type (its rules are the test's), the cluster's processes all running."""
    await asyncio.to_thread(cluster.ensure_running)
    engine = make_engine(Settings(DATABASE_URL=cluster.database_url, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0))
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            workspace, key = await workspace_service.create_workspace(session, name=f"faults {uuid.uuid4().hex[:6]}")
    finally:
        await engine.dispose()
    state = World(workspace.id, key, cluster.database_url, cluster.receiver, cluster.api_urls)
    await state.setup_type()
    return state


# --- the report --------------------------------------------------------------------------------------------------

COLUMNS = (
    "fault kind",
    "faults injected",
    "writes acknowledged",
    "writes lost",
    "runs",
    "runs lost",
    "runs duplicated",
    "deliveries",
    "deliveries lost",
    "API back (worst, s)",
    "drained after last fault (s)",
    "5xx / connection errors seen by the load",
)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        errors = ", ".join(f"{code}: {n}" for code, n in sorted(row.answers.items()) if not code.startswith("2"))
        cells = [
            row.kind,
            row.faults,
            row.acknowledged,
            row.writes_lost,
            row.runs,
            row.runs_lost,
            row.runs_duplicated,
            row.deliveries,
            row.deliveries_lost,
            _seconds(row.api_back_seconds),
            _seconds(row.drained_seconds),
            errors or "none",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def record(row: Row) -> None:
    ROWS.append(row)
    print(f"\n{table([row])}")
    for note in row.notes:
        print(f"  note: {note}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    mode = "long (FAULTS_LONG=1)" if LONG else "bounded"
    mode += f", {time.monotonic() - STARTED:.0f} s from collection to the end"
    text = table(ROWS)
    notes = [f"- {row.kind}: {note}" for row in ROWS for note in row.notes]
    terminalreporter.write_sep("=", f"fault suite ({mode})")
    terminalreporter.write_line(text)
    for note in notes:
        terminalreporter.write_line(note)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    body = f"# Fault suite, {mode}, {stamp}\n\n{text}\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
    Path(REPORT_PATH).write_text(body)
