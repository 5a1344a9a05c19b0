"""Automation throughput and latency with N real workers (`python3 -m app.cli worker` subprocesses).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        python3 -m bench.automation --workers 2 --rate 150 --seconds 10

Creates a scratch database, a `lead` type and one rule (on `element.created`: create a task, set a field, add a
comment), then creates elements at a steady rate (open loop, in small batches through the element service) and
measures, from the runs table: rule runs finished per second, and the latency from the element's creation to its
run's end (p50 / p95 / p99). The scratch database is dropped at the end.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import select

from app.auth.actor import system_actor
from app.automation import service as automation_service
from app.automation.models import AutomationRun, RunStatus
from app.automation.schemas import Action, RuleCreate, Trigger
from app.cli import run_migrations
from app.db import make_engine, make_sessionmaker, unit_of_work
from app.elements import service as element_service
from app.elements.models import Element
from app.elements.schemas import BatchItem, ElementBatch
from app.entity_types import service as type_service
from app.entity_types.schemas import EntityTypeCreate, FieldCreate
from app.settings import Settings
from app.workspaces import service as workspace_service

ROOT = Path(__file__).resolve().parent.parent


def _database(url: str, name: str) -> str:
    base = url.replace("postgresql+asyncpg://", "postgresql://").split("?")[0]
    return base.rsplit("/", 1)[0] + "/" + name


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(_database(url, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _setup(settings: Settings) -> uuid.UUID:
    engine = make_engine(settings)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            workspace, _ = await workspace_service.create_workspace(session, name="bench")
            actor = system_actor(workspace.id)
            await type_service.create_entity_type(session, actor, EntityTypeCreate(code="lead", title="Lead"))
            await type_service.create_field(session, actor, "lead", FieldCreate(code="touched", type="integer"))
            await automation_service.create_rule(
                session,
                actor,
                RuleCreate(
                    name="welcome",
                    entity_type="lead",
                    trigger=Trigger(type="element.created"),
                    actions=[
                        Action(type="create_task", params={"title": "Call {{ title }}", "due_in_hours": 4}),
                        Action(type="set_fields", params={"values": {"touched": 1}}),
                        Action(type="add_comment", params={"text": "welcomed {{ title }}"}),
                    ],
                ),
            )
        return workspace.id
    finally:
        await engine.dispose()


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        REDIS_URL=settings.REDIS_URL or "",
        LOG_LEVEL="WARNING",
        DB_POOL_SIZE="10",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def _load(settings: Settings, workspace_id: uuid.UUID, *, rate: float, seconds: float, batch: int) -> int:
    """Create elements at `rate` per second for `seconds`, `batch` at a time, each batch one transaction."""
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    actor = system_actor(workspace_id)
    created = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            due = started + created / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            items = [BatchItem(op="create", data={"title": f"lead {created + i}"}) for i in range(batch)]
            async with unit_of_work(sessionmaker) as session:
                await element_service.batch(session, actor, "lead", ElementBatch(items=items))
            created += batch
    finally:
        await engine.dispose()
    return created


async def _wait_done(
    settings: Settings, workspace_id: uuid.UUID, expected: int, *, patience: float
) -> tuple[list[float], list[float]]:
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    deadline = time.monotonic() + patience
    try:
        while True:
            async with sessionmaker() as session:
                rows = (
                    await session.execute(
                        select(AutomationRun.status, AutomationRun.finished_at, Element.created_at)
                        .join(Element, Element.id == AutomationRun.element_id)
                        .where(AutomationRun.workspace_id == workspace_id)
                    )
                ).all()
            done = [(r[1], r[2]) for r in rows if r[0] == RunStatus.succeeded and r[1] is not None]
            if len(done) >= expected or time.monotonic() > deadline:
                failed = [r for r in rows if r[0] == RunStatus.failed]
                if failed:
                    print(f"failed runs: {len(failed)}")
                return [(end - start).total_seconds() for end, start in done], [end.timestamp() for end, _ in done]
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=150, help="elements created per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=5, help="elements per create transaction")
    args = parser.parse_args()
    base = Settings()
    name = f"stageflow_bench_{os.getpid()}"
    await _admin(base.database_url, f'CREATE DATABASE "{name}"')
    settings = Settings(DATABASE_URL=_database(base.database_url, name), REDIS_URL=base.REDIS_URL)
    log = ROOT / ".stageflow" / "bench-workers.log"
    log.parent.mkdir(exist_ok=True)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.to_thread(run_migrations, settings.database_url)
        redis = Redis.from_url(settings.REDIS_URL or "")
        await redis.flushdb()
        await redis.aclose()
        workspace_id = await _setup(settings)
        workers = [_start_worker(settings, log) for _ in range(args.workers)]
        await asyncio.sleep(2.5)  # let the workers start
        load_started = time.time()
        created = await _load(settings, workspace_id, rate=args.rate, seconds=args.seconds, batch=args.batch)
        load_seconds = time.time() - load_started
        latencies, finished = await _wait_done(settings, workspace_id, created, patience=120)
        span = max(finished) - load_started if finished else float("nan")
        print(
            f"workers={args.workers} offered={created / load_seconds:.0f}/s for {load_seconds:.1f}s "
            f"created={created} runs succeeded={len(latencies)}\n"
            f"throughput={len(latencies) / span:.0f} runs/s (first change to last finished run, {span:.1f}s)\n"
            f"latency change->finished: p50={statistics.median(latencies) * 1000:.0f}ms "
            f"p95={_pct(latencies, 0.95) * 1000:.0f}ms p99={_pct(latencies, 0.99) * 1000:.0f}ms "
            f"max={max(latencies) * 1000:.0f}ms"
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        await _admin(base.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
