"""Server CPU per single write, in process: creates, stage moves and two-value patches of the benchmark's lead type
(20 fields) through httpx's ASGI transport, one after another, timed with `time.process_time`.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python3 -m bench.writes_cpu --n 500 [--profile out]

The process runs client and server, so the numbers include httpx's side (the same in every run): compare runs of
this script with one another, not with the HTTP benchmark's server CPU column. A fresh database is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import nullcontext

import asyncpg
import httpx

from app.cli import run_migrations
from app.db import unit_of_work
from app.main import create_app
from app.settings import Settings
from app.workspaces import service as workspace_service
from bench.data import STAGE_CODES, make_lead
from bench.runner import API, _ok, create_schema


def _with_database(url: str, name: str) -> str:
    base, _, query = url.replace("postgresql+asyncpg://", "postgresql://").partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _measure(
    label: str, n: int, one: Callable[[int], Awaitable[None]], profiler: cProfile.Profile | None
) -> float:
    for i in range(min(20, n)):  # warm caches (metadata, keys, statements) outside the timed part
        await one(-1 - i)
    started = time.process_time()
    with profiler or nullcontext():
        for i in range(n):
            await one(i)
    per_op = (time.process_time() - started) * 1000 / n
    print(f"{label:<20} {per_op:6.2f} ms CPU/op over {n}")
    return per_op


async def measure(url: str, n: int, profile: str | None) -> dict[str, float]:
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    settings = Settings(DATABASE_URL=url, REDIS_URL=redis, ENVIRONMENT="test", OUTBOX_DISPATCHER_ENABLED=False)
    app = create_app(settings)
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        async with unit_of_work(app.state.sessionmaker) as session:
            _, key = await workspace_service.create_workspace(session, name="writes-cpu")
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            setup = await create_schema(client)
            rng = random.Random(7)
            created: list[tuple[str, str]] = []
            profilers = {kind: cProfile.Profile() if profile else None for kind in ("create", "move", "patch")}

            async def create(i: int) -> None:
                lead = make_lead(rng, len(created))
                body = lead.body(setup.pipeline_ids, setup.user_ids)
                element = await _ok(await client.post(f"{API}/entity-types/lead/elements", json=body))
                created.append((element["id"], element["stage_code"]))

            async def move(i: int) -> None:
                index = i % len(created)
                element_id, stage = created[index]
                target = STAGE_CODES[(STAGE_CODES.index(stage) + 1) % len(STAGE_CODES)]
                await _ok(await client.post(f"{API}/elements/{element_id}/move", json={"stage_code": target}))
                created[index] = (element_id, target)

            async def patch(i: int) -> None:
                body = {"values": {"visits": rng.randint(0, 300), "budget": f"{rng.randint(0, 10**6) / 100:.2f}"}}
                await _ok(await client.patch(f"{API}/elements/{created[i % len(created)][0]}", json=body))

            results["single create"] = await _measure("single create", n, create, profilers["create"])
            results["stage move"] = await _measure("stage move", n, move, profilers["move"])
            results["patch two values"] = await _measure("patch two values", n, patch, profilers["patch"])
            for kind, profiler in profilers.items():
                if profiler is not None:
                    profiler.dump_stats(f"{profile}.{kind}.prof")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="requests of each kind")
    parser.add_argument("--profile", help="write cProfile stats to <PROFILE>.<kind>.prof")
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"stageflow_writes_cpu_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        url = _with_database(server, name)
        run_migrations(Settings(DATABASE_URL=url).database_url)
        asyncio.run(measure(url, args.n, args.profile))
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
