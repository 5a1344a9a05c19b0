"""Faults under load: PostgreSQL and Redis restarts, SIGKILLed workers and API processes, misbehaving receivers.

Each load test runs the load generator (creates and moves through the two API processes) with rules that set
fields, create tasks, delay, fire on a timer and call the local receiver; injects its faults one after another;
stops the load; waits for the work to drain; then checks the ledger of acknowledged writes against the database and
the receiver. The numbers go in the report table (see conftest.py).
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from tests.faults.conftest import Cluster, record, scale
from tests.faults.stack import FAST_ENV, Process
from tests.faults.world import Row, World, api_back_seconds, inject_faults

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WRITERS = scale(2, 4)
PAUSE = 0.4
INTERVAL = (0.2, 0.8)  # between one fault's end and the next one
MAX_ATTEMPTS = int(FAST_ENV["WEBHOOK_MAX_ATTEMPTS"])
BACKOFF = float(FAST_ENV["WEBHOOK_BACKOFF_SECONDS"])


async def under_load(world: World, row: Row, inject: Callable[[int], Awaitable[None]]) -> None:
    """Load, the faults one after another, a little more load; then the drain and the checks."""
    await world.add_standard_rules()
    stop = asyncio.Event()
    load = asyncio.create_task(world.load(stop, writers=WRITERS, pause=PAUSE))
    try:
        await asyncio.sleep(1)
        healed = await inject_faults(row.faults, inject, interval=INTERVAL)
        await asyncio.sleep(1.5)  # writes after the last fault: the API takes them again
    finally:
        stop.set()
        await load
    row.api_back_seconds = api_back_seconds(world.ledger, healed)
    drained = await world.drain()
    row.drained_seconds = None if drained is None else drained + 1.5
    await world.check(row)


def assert_clean(row: Row) -> None:
    assert row.writes_lost == 0, row.notes
    assert row.runs_lost == 0, row.notes
    assert row.runs_duplicated == 0, row.notes
    assert row.deliveries_lost == 0, row.notes
    assert row.drained_seconds is not None, "work was still left after the drain period"
    assert row.acknowledged > 0
    assert row.runs > 0
    assert row.deliveries > 0


def note_server_errors(row: Row) -> None:
    """503 while PostgreSQL is down is what the API should answer; a 500 is counted and shown, not failed on (the
    503 answer is being built elsewhere)."""
    if row.server_errors:
        row.notes.append(f"{row.server_errors} answers were 500 (503 problem+json expected)")


async def test_postgres_restart_keeps_every_acknowledged_write(cluster: Cluster, world: World) -> None:
    row = Row("PostgreSQL restart (fast stop, start)", scale(20, 50))

    async def inject(index: int) -> None:
        await asyncio.to_thread(cluster.postgres.stop, "fast")
        await asyncio.sleep(random.uniform(0.1, 0.5))
        await asyncio.to_thread(cluster.postgres.start)

    await under_load(world, row, inject)
    note_server_errors(row)
    row.notes += [f"{p.name} exited" for p in cluster.workers + cluster.apis if not p.alive]
    record(row)
    assert_clean(row)


async def test_redis_restart_loses_no_run_delay_timer_or_delivery(cluster: Cluster, world: World) -> None:
    row = Row("Redis restart (SIGKILL, nothing persisted)", scale(20, 50))

    async def inject(index: int) -> None:
        await asyncio.to_thread(cluster.redis.kill)
        await asyncio.sleep(random.uniform(0.1, 0.5))
        await asyncio.to_thread(cluster.redis.start)

    await under_load(world, row, inject)
    dead = [p.name for p in cluster.workers + cluster.apis if not p.alive]
    row.notes += [f"{name} exited" for name in dead]
    record(row)
    assert_clean(row)
    assert not dead, "a process did not survive Redis going away"


async def test_sigkilled_workers_run_everything_exactly_once(cluster: Cluster, world: World) -> None:
    row = Row("worker SIGKILL (2 workers)", scale(20, 50))

    async def inject(index: int) -> None:
        victim = random.choice(cluster.workers)
        await asyncio.to_thread(victim.kill)
        # A supervisor brings it back; meanwhile the other worker goes on (or none, when both were just killed).
        await asyncio.sleep(random.uniform(0.0, 0.5))
        await asyncio.to_thread(victim.start, wait=False)

    await under_load(world, row, inject)
    record(row)
    assert_clean(row)


async def test_sigkilled_api_processes_lose_no_acknowledged_write(cluster: Cluster, world: World) -> None:
    row = Row(f"API SIGKILL ({len(cluster.apis)} API processes)", scale(20, 50))
    restarts: dict[str, asyncio.Task[float]] = {}
    took: list[float] = []

    async def restart(victim: Process) -> float:
        started = time.monotonic()
        await asyncio.to_thread(victim.start)
        return time.monotonic() - started

    async def inject(index: int) -> None:
        # One that answers is killed while another one serves; a supervisor restarts it.
        while len(cluster.apis) - len(restarts) < 2:
            await asyncio.wait(list(restarts.values()), return_when=asyncio.FIRST_COMPLETED)
        victim = await healthy([api for api in cluster.apis if api.name not in restarts])
        await asyncio.to_thread(victim.kill)
        restarts[victim.name] = task = asyncio.create_task(restart(victim))

        def finished(done: asyncio.Task[float]) -> None:
            took.append(done.result())
            restarts.pop(victim.name, None)

        task.add_done_callback(finished)

    await under_load(world, row, inject)
    await asyncio.gather(*restarts.values())
    took.sort()
    row.notes.append(
        f"a killed API process answered again after {took[len(took) // 2]:.1f} s (median), {took[-1]:.1f} s max"
    )
    note_server_errors(row)
    record(row)
    assert_clean(row)


async def healthy(apis: list[Process]) -> Process:
    """One of these API processes that answers now; waits for one when none does."""
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(600):
            for api in random.sample(apis, len(apis)):
                try:
                    if api.alive and (await client.get(f"{api.health_url}/healthz")).status_code == 200:
                        return api
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.1)
    raise AssertionError("no API process came back")


# --- receivers that misbehave --------------------------------------------------------------------------------------

MODES = {"500": "answers 500", "hang": "hangs past the timeout", "close": "closes the connection", "slow": "drips"}
ELEMENTS = scale(4, 12)


async def test_misbehaving_receivers_get_retries_then_a_replayable_dead_letter(cluster: Cluster, world: World) -> None:
    """Each misbehaviour gets a subscription and a rule webhook. Every delivery is tried WEBHOOK_MAX_ATTEMPTS times
    with growing pauses, then dead-lettered (failed); a subscription's dead letter, replayed once the receiver is
    fixed, arrives with the webhook-id it had. A receiver that fails twice and then answers gets the message."""
    hook = world.receiver.url
    subscriptions = {}
    for mode in MODES:
        created = await world.post("/webhooks", {"url": hook(f"/{mode}/sub"), "events": ["element.created"]})
        subscriptions[mode] = str(created["id"])
    actions = [{"type": "webhook", "params": {"url": hook(f"/{mode}/rule")}} for mode in MODES]
    actions.append({"type": "webhook", "params": {"url": hook("/flaky/2/rule")}})
    await world.add_rule("misbehaving", {"trigger": {"type": "element.created"}, "actions": actions})
    async with world.client(world.api_urls[0]) as client:
        for number in range(ELEMENTS):
            response = await client.post("/entity-types/lead/elements", json={"title": f"lead {number}"})
            assert response.status_code == 201, response.text
    started = time.monotonic()
    assert await world.drain() is not None, world.left[-1:]
    exhausted = time.monotonic() - started

    connection = await asyncpg.connect(world.database_url)
    try:
        deliveries = await connection.fetch(
            """SELECT d.id, d.url, d.subscription_id, d.message_id, d.status::text AS status, d.attempts,
                      array_agg(a.error ORDER BY a.attempt) AS errors,
                      array_agg(a.status_code ORDER BY a.attempt) AS codes,
                      array_agg(a.created_at ORDER BY a.attempt) AS times
                 FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
                WHERE d.workspace_id = $1 GROUP BY d.id""",
            world.workspace_id,
        )
        sent = world.receiver.bodies()
        seen = dict(world.receiver.seen)
        rows = {mode: Row(f"receiver {text}", 0) for mode, text in MODES.items()}
        for delivery in deliveries:
            mode = delivery["url"].split("/")[3]
            if mode == "flaky":
                # Two 500s, then delivered: same webhook-id and body every time.
                assert delivery["status"] == "succeeded", dict(delivery)
                assert delivery["codes"] == [500, 500, 200]
                assert seen[delivery["message_id"]] == 3
                assert len(sent[delivery["message_id"]]) == 1
                continue
            row = rows[mode]
            row.deliveries += 1
            row.faults += len(delivery["errors"])
            assert delivery["status"] == "failed", dict(delivery)  # dead-lettered after its attempts
            assert delivery["attempts"] == MAX_ATTEMPTS
            assert len(delivery["errors"]) == MAX_ATTEMPTS
            assert all(error for error in delivery["errors"]), dict(delivery)
            expected = {"500": "HTTP 500", "hang": "timed out", "close": "RemoteProtocolError", "slow": "timed out"}
            assert all(expected[mode] in error for error in delivery["errors"]), delivery["errors"]
            # The receiver saw the same webhook-id once per attempt, with the same body.
            assert seen[delivery["message_id"]] == MAX_ATTEMPTS
            assert len(sent[delivery["message_id"]]) == 1
            # Backoff: the pause before attempt k+1 is at least 0.8 * BACKOFF * 2^(k-1) s (±20 % jitter).
            gaps = [(b - a).total_seconds() for a, b in zip(delivery["times"], delivery["times"][1:], strict=False)]
            assert all(gap >= 0.8 * BACKOFF * 2**k - 0.05 for k, gap in enumerate(gaps)), gaps
        assert sum(r.deliveries for r in rows.values()) == 2 * len(MODES) * ELEMENTS

        # The receiver is fixed; the dead letters of subscriptions are replayed and arrive under their webhook-id.
        world.receiver.healed = True
        dead = [d for d in deliveries if d["subscription_id"] is not None]
        async with world.client(world.api_urls[0]) as client:
            for delivery in dead:
                response = await client.post(
                    f"/webhooks/{delivery['subscription_id']}/deliveries/{delivery['id']}/replay"
                )
                assert response.status_code == 200, response.text
        assert await world.drain() is not None, world.left[-1:]
        after = {
            r["id"]: r["status"]
            for r in await connection.fetch(
                "SELECT id, status::text AS status FROM webhook_deliveries WHERE id = ANY($1)",
                [d["id"] for d in dead],
            )
        }
        delivered = world.receiver.delivered()
        for delivery in dead:
            row = rows[delivery["url"].split("/")[3]]
            if after[delivery["id"]] != "succeeded" or delivery["message_id"] not in delivered:
                row.deliveries_lost += 1
                row.notes.append(f"replayed delivery {delivery['id']} did not arrive")
        rule_dead = sum(1 for d in deliveries if d["subscription_id"] is None and d["status"] == "failed")
    finally:
        await connection.close()
    for row in rows.values():
        row.acknowledged = ELEMENTS
        row.drained_seconds = exhausted
        row.notes.append(
            "rule webhook dead letters stay failed: the replay endpoint needs a subscription "
            f"({rule_dead // len(MODES)} of them here)"
        )
        record(row)
    assert all(row.deliveries_lost == 0 for row in rows.values())
