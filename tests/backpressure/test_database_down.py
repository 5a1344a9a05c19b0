"""PostgreSQL stopped under a running API process (`stageflow serve`, on a server of the test's own): every kind of
request answers 503 problem+json with Retry-After while it is down, /readyz says so, /metrics still answers, and
once PostgreSQL is back the same process serves again, without a restart."""

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import websockets

from app.db import make_engine, make_sessionmaker, unit_of_work
from app.kit.net import free_port, wait_until_healthy
from app.settings import Settings
from app.workspaces import service as workspace_service
from tests.backpressure.own_postgres import OwnPostgres, binaries, create, remove

ROOT = Path(__file__).resolve().parents[2]
GRAPHQL_QUERY = {"query": "{ entityTypes { code } }"}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (pgserver wheel or /usr/lib/postgresql) to start a server of our own")
    server = create(bin_dir)
    server.start()
    try:
        from app.cli import run_migrations

        run_migrations(Settings(DATABASE_URL=server.url).database_url)
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # stopped already
            server.stop()
        remove(server)


@pytest.fixture(scope="module")
def api(own_postgres: OwnPostgres, embedded: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`stageflow serve` on the test's server, with small pools and short timeouts."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    environment = {
        **os.environ,
        "DATABASE_URL": own_postgres.url,
        "REDIS_URL": embedded["redis"],
        "JWT_SECRET": secrets.token_urlsafe(48),
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "0",
        "DB_READ_POOL_SIZE": "2",
        "DB_POOL_TIMEOUT_SECONDS": "2",
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
        "METRICS_BACKLOG_TTL_SECONDS": "0",
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(base, process, timeout=60)
            yield base
            assert process.poll() is None, "the API process died: " + log_path.read_text()[-3000:]
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
async def admin_key(own_postgres: OwnPostgres) -> AsyncIterator[str]:
    engine = make_engine(Settings(DATABASE_URL=own_postgres.url, DB_POOL_SIZE=1))
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            _, key = await workspace_service.create_workspace(session, name="restart")
        yield key
    finally:
        await engine.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["status"] == 503
    assert body["type"] == "https://stageflow.dev/problems/database-unavailable"


async def every_kind_of_request(client: httpx.AsyncClient, round_number: int) -> list[httpx.Response]:
    """A read in a session, a lean read (the read pool), a write, GraphQL."""
    return [
        await client.get("/api/v1/entity-types"),
        await client.get("/api/v1/entity-types/lead/elements"),
        await client.post("/api/v1/entity-types/lead/elements", json={"title": f"round {round_number}"}),
        await client.post("/graphql", json=GRAPHQL_QUERY),
    ]


@pytest.mark.slow
async def test_the_api_answers_503_while_postgresql_is_down_and_recovers_by_itself(
    own_postgres: OwnPostgres, api: str, admin_key: str
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        created = await client.post("/api/v1/entity-types", json={"code": "lead", "title": "Lead"})
        assert created.status_code == 201, created.text
        titles = []
        for round_number in (1, 2):
            # Up: every kind of request works (after a restart: at once, the pools hold no dead connection).
            responses = await every_kind_of_request(client, round_number)
            assert [r.status_code for r in responses] == [200, 200, 201, 200], [r.text for r in responses]
            assert "errors" not in responses[3].json()
            titles.append(f"round {round_number}")

            if round_number == 1:
                own_postgres.stop()
            else:
                # A request in flight when the server goes: its connection is lost mid-statement.
                in_flight = await stop_during_a_write(own_postgres, client)
                assert_unavailable(in_flight)
            for response in await every_kind_of_request(client, round_number):
                assert_unavailable(response)
            assert await subscription_answer(api, admin_key) == "closed 4403"  # refused, not an internal error
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("error")
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert 'stageflow_backlog_up{source="database"} 0.0' in metrics.text
            assert 'stageflow_backlog_up{source="redis"} 1.0' in metrics.text

            own_postgres.start()
        responses = await every_kind_of_request(client, 3)
        assert await subscription_answer(api, admin_key) == "connection_ack"
        assert [r.status_code for r in responses] == [200, 200, 201, 200], [r.text for r in responses]
        assert (await client.get("/readyz")).status_code == 200
        assert 'stageflow_backlog_up{source="database"} 1.0' in (await client.get("/metrics")).text
        # What was acknowledged before each stop is there; nothing refused with a 503 was written.
        page = (await client.get("/api/v1/entity-types/lead/elements", params={"limit": 50})).json()
        assert sorted(item["title"] for item in page["items"]) == [*titles, "round 3"]


async def stop_during_a_write(own_postgres: OwnPostgres, client: httpx.AsyncClient) -> httpx.Response:
    """Stop the server while a write waits on a row lock held elsewhere; the write's answer."""
    blocker = await asyncpg.connect(own_postgres.url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM entity_types WHERE code = 'lead' FOR UPDATE")
        write = asyncio.create_task(client.patch("/api/v1/entity-types/lead", json={"title": "Leads"}))
        for _ in range(500):  # until the write waits on the lock (bounded; not a timing assertion)
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'stageflow' AND wait_event_type = 'Lock'"
            )
            if waiting or write.done():
                break
            await asyncio.sleep(0.02)
        assert waiting == 1, "the write did not wait on the lock"
        await asyncio.to_thread(own_postgres.stop)
        return await write
    finally:
        await blocker.close(timeout=1)


async def subscription_answer(api: str, key: str) -> str:
    """What a GraphQL WebSocket answers connection_init with: its first message's type, or how it closed."""
    async with websockets.connect(
        api.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        try:
            return str(json.loads(await ws.recv())["type"])
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"
