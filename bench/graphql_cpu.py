"""`python3 -m bench.graphql_cpu --n 100000`: the server's CPU per request of the REST filtered list and of the same
page as the typed GraphQL query (the "graphql filtered list" scenario), measured in-process.

The app runs in this process behind httpx's ASGI transport; requests go one at a time, and `time.process_time` is
read around each call into the app only, so the client's own work (building and parsing bodies) is left out.
`--keep` keeps the loaded database and `--database NAME` measures one kept earlier (no loading).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from app.cli import run_migrations
from app.db import unit_of_work
from app.main import create_app
from app.settings import Settings
from app.workspaces import service as workspace_service
from bench.data import INDUSTRIES
from bench.runner import API, DEFAULT_ADMIN_URL, Config, Sample, _with_database, create_schema, filtered_filter, load

GRAPHQL_QUERY = (
    "query($filter: LeadFilter, $sort: String) { leads(filter: $filter, sort: $sort, first: 50) "
    "{ edges { node { id title industry budget stage { code title } } } } }"
)
Send = Callable[..., Awaitable[Any]]
ASGIApp = Callable[..., Awaitable[None]]


class MeteredApp:
    """The app, with the process CPU time spent inside its calls added up (requests must not overlap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cpu_s = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu_s += time.process_time() - started


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _measure(name: str, metered: MeteredApp, count: int, one: Callable[[int], Awaitable[None]]) -> float:
    for i in range(min(50, count)):  # warm: caches, the schema, the prepared statements
        await one(i)
    rounds: list[float] = []
    for _ in range(3):
        metered.cpu_s = 0.0
        for i in range(count):
            await one(i)
        rounds.append(metered.cpu_s * 1000 / count)
    best = min(rounds)
    print(f"{name:>24}: server CPU {best:.2f} ms/request (rounds: {', '.join(f'{r:.2f}' for r in rounds)})")
    return best


async def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python3 -m bench.graphql_cpu", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="requests per round (3 rounds, the best kept)")
    parser.add_argument("--database", help="a database kept by an earlier run (--keep): measure it, load nothing")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13"))
    args = parser.parse_args(argv)
    name = args.database or f"stageflow_gqlcpu_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = _with_database(args.admin_url, name)
    if not args.database:
        await _admin(args.admin_url, f'CREATE DATABASE "{name}"')
    try:
        return await _run(args, name, url)
    finally:
        if not args.keep and not args.database:
            await _admin(args.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _run(args: argparse.Namespace, name: str, url: str) -> dict[str, float]:
    settings = Settings(
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        ENVIRONMENT="production",
        JWT_SECRET=secrets.token_urlsafe(48),
        OUTBOX_DISPATCHER_ENABLED=False,
        LOG_LEVEL="WARNING",
    )
    if not args.database:
        await asyncio.to_thread(run_migrations, settings.database_url)
    app = create_app(settings)
    metered = MeteredApp(app)
    async with app.router.lifespan_context(app):
        key = await _key(app, name, fresh=not args.database)
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=metered)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            if not args.database:
                config = Config(n=args.n, quiet=False)
                setup = await create_schema(client)
                await load(client, config, setup, 0, args.n, Sample(), every=10**9)
                print(f"loaded {args.n:,} leads into {name}")
            return await _scenarios(client, metered, args.requests)


async def _key(app: Any, name: str, *, fresh: bool) -> str:
    """The admin key of a new workspace, saved beside the database for a later `--database` run."""
    path = Path(f"/tmp/{name}.key")  # noqa: S108 (a benchmark database's key, nothing secret)
    if not fresh:
        return (await asyncio.to_thread(path.read_text)).strip()
    async with unit_of_work(app.state.sessionmaker) as session:
        _, key = await workspace_service.create_workspace(session, name="bench")
    await asyncio.to_thread(path.write_text, key)
    return str(key)


async def _scenarios(client: httpx.AsyncClient, metered: MeteredApp, count: int) -> dict[str, float]:
    rest_rng, graphql_rng = random.Random(1), random.Random(1)

    async def rest(i: int) -> None:
        params = {"filter": orjson.dumps(filtered_filter(rest_rng)).decode(), "sort": "-budget", "limit": "50"}
        response = await client.get(f"{API}/entity-types/lead/elements", params=params)
        if response.status_code != 200:
            raise RuntimeError(response.text[:300])

    async def graphql(i: int) -> None:
        industry, budget = graphql_rng.choice(INDUSTRIES), graphql_rng.randint(0, 9000)
        typed_filter = {"industry": {"eq": industry}, "budget": {"gte": budget}}
        body = {"query": GRAPHQL_QUERY, "variables": {"filter": typed_filter, "sort": "-budget"}}
        response = await client.post("/graphql", json=body)
        if response.status_code != 200 or b'"errors"' in response.content:
            raise RuntimeError(response.text[:300])

    results = {
        "filtered list": await _measure("filtered list (REST)", metered, count, rest),
        "graphql filtered list": await _measure("graphql filtered list", metered, count, graphql),
    }
    ratio = results["graphql filtered list"] / results["filtered list"]
    print(f"{'GraphQL / REST':>24}: {ratio:.2f}x")
    return results


if __name__ == "__main__":
    asyncio.run(main())
