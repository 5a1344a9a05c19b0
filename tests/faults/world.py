"""One fault scenario's world: a workspace with rules that call a local receiver, a load generator that writes and
moves elements through the API processes and keeps a ledger of what was acknowledged, and the checks run on the
database once the faults are over."""

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from tests.faults.stack import Receiver

STAGES = ("NEW", "IN_PROGRESS", "SUCCESS")
DRAIN_SECONDS = 90  # how long the work left after the last fault may take before what is left counts as lost


@dataclass
class Row:
    """One line of the report."""

    kind: str
    faults: int
    acknowledged: int = 0
    writes_lost: int = 0
    runs: int = 0
    runs_lost: int = 0
    runs_duplicated: int = 0
    deliveries: int = 0
    deliveries_lost: int = 0
    api_back_seconds: float | None = None  # worst time from a healed fault to the next acknowledged write
    drained_seconds: float | None = None  # from the last healed fault until every run and delivery was done
    answers: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.answers.items() if code == "500")


@dataclass
class Ack:
    element_id: str
    stage_id: str
    moved_at: datetime


@dataclass
class Ledger:
    """What the API acknowledged with a 2xx, and every answer it gave."""

    creates: dict[str, Ack] = field(default_factory=dict)
    moves: list[Ack] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    ok_times: list[float] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return len(self.creates) + len(self.moves)


def _ack(body: dict[str, Any]) -> Ack:
    return Ack(str(body["id"]), str(body["stage_id"]), datetime.fromisoformat(body["moved_at"]))


@dataclass
class World:
    workspace_id: uuid.UUID
    api_key: str
    database_url: str
    receiver: Receiver
    api_urls: list[str]
    stage_ids: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    left: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # what the drain saw, over time

    def client(self, base_url: str, timeout: float = 10) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=timeout
        )

    async def post(self, path: str, body: dict[str, Any], *, status: int = 201) -> dict[str, Any]:
        async with self.client(self.api_urls[0]) as client:
            response = await client.post(path, json=body)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    async def setup_type(self) -> None:
        await self.post("/entity-types", {"code": "lead", "title": "Lead"})
        await self.post("/entity-types/lead/fields", {"code": "touched", "type": "integer"})
        async with self.client(self.api_urls[0]) as client:
            pipelines = (await client.get("/entity-types/lead/pipelines")).json()["items"]
        stages = next(p for p in pipelines if p["is_default"])["stages"]
        self.stage_ids = {s["code"]: str(s["id"]) for s in stages}

    async def add_rule(self, name: str, body: dict[str, Any]) -> None:
        rule = await self.post("/automation/rules", {"name": name, "entity_type": "lead", **body})
        self.rules[name] = str(rule["id"])

    async def add_standard_rules(self) -> None:
        """On create: set_fields, a task, a webhook. On entering IN_PROGRESS: a task, a webhook. On create after a
        1 s delay: a task, a webhook. 1 s in IN_PROGRESS (a timer): a task."""
        hook = self.receiver.url
        await self.add_rule(
            "welcome",
            {
                "trigger": {"type": "element.created"},
                "actions": [
                    {"type": "set_fields", "params": {"values": {"touched": 1}}},
                    {"type": "create_task", "params": {"title": "Call {{ title }}"}},
                    {"type": "webhook", "params": {"url": hook("/ok/welcome")}},
                ],
            },
        )
        await self.add_rule(
            "working",
            {
                "trigger": {"type": "element.entered_stage"},
                "stage_id": self.stage_ids["IN_PROGRESS"],
                "actions": [
                    {"type": "create_task", "params": {"title": "Work on {{ title }}"}},
                    {"type": "webhook", "params": {"url": hook("/ok/working")}},
                ],
            },
        )
        await self.add_rule(
            "later",
            {
                "trigger": {"type": "element.created"},
                "actions": [
                    {"type": "delay", "params": {"seconds": 1}},
                    {"type": "create_task", "params": {"title": "Later {{ title }}"}},
                    {"type": "webhook", "params": {"url": hook("/ok/later")}},
                ],
            },
        )
        await self.add_rule(
            "stale",
            {
                "trigger": {"type": "time_in_stage", "seconds": 1},
                "stage_id": self.stage_ids["IN_PROGRESS"],
                "actions": [{"type": "create_task", "params": {"title": "Stale {{ title }}"}}],
            },
        )

    # --- the load ----------------------------------------------------------------------------------------------

    async def load(self, stop: asyncio.Event, *, writers: int, pause: float) -> None:
        await asyncio.gather(*(self._writer(index, stop, pause) for index in range(writers)))

    async def _writer(self, index: int, stop: asyncio.Event, pause: float) -> None:
        """Creates elements and moves its own ones between stages; any API process that answers will do."""
        mine: dict[str, str] = {}  # element id -> last acknowledged stage id
        clients = [self.client(url) for url in self.api_urls]
        number = 0
        try:
            while not stop.is_set():
                client = random.choice(clients)
                if mine and random.random() < 0.45:
                    element_id = random.choice(list(mine))
                    code = random.choice([c for c in STAGES if self.stage_ids[c] != mine[element_id]])
                    body = await self._write(client, "POST", f"/elements/{element_id}/move", {"stage_code": code})
                    if body is not None:
                        self.ledger.moves.append(ack := _ack(body))
                        mine[element_id] = ack.stage_id
                else:
                    number += 1
                    title = f"w{index}-{number}"
                    body = await self._write(client, "POST", "/entity-types/lead/elements", {"title": title})
                    if body is not None:
                        self.ledger.creates[str(body["id"])] = ack = _ack(body)
                        mine[ack.element_id] = ack.stage_id
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))
        finally:
            for client in clients:
                await client.aclose()

    async def _write(self, client: httpx.AsyncClient, method: str, path: str, json: Any) -> dict[str, Any] | None:
        try:
            response = await client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            self.ledger.answers[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            return None
        self.ledger.answers[str(response.status_code)] += 1
        if response.is_success:
            self.ledger.ok_times.append(time.monotonic())
            body: dict[str, Any] = response.json()
            return body
        return None

    # --- the checks --------------------------------------------------------------------------------------------

    async def drain(self, *, seconds: float = DRAIN_SECONDS) -> float | None:
        """Wait until nothing is left to do: every event handled, no run queued or running, no delivery pending,
        no timer due. Returns how long it took, or None when work was still left at the end."""
        started = time.monotonic()
        connection = await asyncpg.connect(self.database_url)
        try:
            while time.monotonic() - started < seconds:
                left = await connection.fetchrow(
                    """
                    SELECT (SELECT count(*) FROM outbox_events o
                              WHERE o.workspace_id = $1 AND o.event_type IN ('element.created', 'element.moved')
                                AND NOT EXISTS (SELECT 1 FROM automation_handled_events h
                                                 WHERE h.event_id = o.event_id)) AS events,
                           (SELECT count(*) FROM automation_runs
                              WHERE workspace_id = $1 AND status IN ('queued', 'running')) AS runs,
                           (SELECT count(*) FROM webhook_deliveries
                              WHERE workspace_id = $1 AND status = 'pending') AS deliveries,
                           (SELECT count(*) FROM automation_timers
                              WHERE workspace_id = $1 AND fired_at IS NULL AND due_at < now()) AS timers
                    """,
                    self.workspace_id,
                )
                self.left.append((round(time.monotonic() - started, 1), dict(left)))
                if not any(left.values()):
                    return time.monotonic() - started
                await asyncio.sleep(0.25)
            return None
        finally:
            await connection.close()

    async def check(self, row: Row, *, deliveries_expected: bool = True) -> Row:
        """Fill the row from the database and the receiver: lost writes, lost and duplicated runs, lost deliveries."""
        row.acknowledged = self.ledger.acknowledged
        row.answers = self.ledger.answers
        connection = await asyncpg.connect(self.database_url)
        try:
            row.writes_lost = await self._writes_lost(connection, row)
            await self._runs(connection, row)
            if deliveries_expected:
                await self._deliveries(connection, row)
        finally:
            await connection.close()
        return row

    async def _writes_lost(self, connection: asyncpg.Connection, row: Row) -> int:
        ids = [uuid.UUID(i) for i in self.ledger.creates]
        found = {
            str(r["id"]): r
            for r in await connection.fetch(
                "SELECT id FROM elements WHERE workspace_id = $1 AND id = ANY($2)", self.workspace_id, ids
            )
        }
        lost = [i for i in self.ledger.creates if i not in found]
        history = {
            (str(r["element_id"]), str(r["to_stage_id"]), r["moved_at"])
            for r in await connection.fetch(
                "SELECT element_id, to_stage_id, moved_at FROM stage_history WHERE workspace_id = $1", self.workspace_id
            )
        }
        created = {(a.element_id, a.stage_id, a.moved_at) for a in self.ledger.creates.values()}
        lost_moves = [m for m in self.ledger.moves if (m.element_id, m.stage_id, m.moved_at) not in history | created]
        if lost or lost_moves:
            row.notes.append(f"lost writes: creates {lost[:5]}, moves {lost_moves[:5]}")
        return len(lost) + len(lost_moves)

    async def _runs(self, connection: asyncpg.Connection, row: Row) -> None:
        """Every (event, rule) that should have run did, once, and its effects happened once."""
        for name, count in (await self._expected_runs(connection)).items():
            rule_id = uuid.UUID(self.rules[name])
            by_status = dict(
                await connection.fetch(
                    "SELECT status::text, count(*) FROM automation_runs WHERE rule_id = $1 GROUP BY status", rule_id
                )
            )
            succeeded = by_status.get("succeeded", 0)
            row.runs += succeeded
            if count != succeeded or set(by_status) - {"succeeded"}:
                row.notes.append(f"rule {name}: expected {count} runs, got {by_status}")
                row.runs_lost += max(0, count - succeeded)
            for error in await connection.fetch(
                "SELECT left(error, 300) FROM automation_runs WHERE rule_id = $1 AND status = 'failed' LIMIT 3", rule_id
            ):
                row.notes.append(f"rule {name}: a failed run: {error[0]}")
        if "stale" in self.rules:
            await self._timers(connection, row)
        await self._effects(connection, row)

    async def _expected_runs(self, connection: asyncpg.Connection) -> dict[str, int]:
        """How many runs each event-driven rule owes: one per event that fires it, whether or not it was acked."""
        ws = self.workspace_id
        created = await connection.fetchval(
            "SELECT count(*) FROM outbox_events WHERE workspace_id = $1 AND event_type = 'element.created'", ws
        )
        expected: dict[str, int] = {name: created for name in ("welcome", "later") if name in self.rules}
        if "working" in self.rules:
            expected["working"] = await connection.fetchval(
                """SELECT count(*) FROM outbox_events WHERE workspace_id = $1 AND (
                       (event_type = 'element.moved' AND payload->>'to_stage_id' = $2)
                    OR (event_type = 'element.created' AND payload->>'stage_id' = $2))""",
                ws,
                self.stage_ids["IN_PROGRESS"],
            )
        return expected

    async def _timers(self, connection: asyncpg.Connection, row: Row) -> None:
        """A timer whose element still sits where it was when the timer was armed (same stage, same move) ran; no
        timer run failed."""
        rule_id = uuid.UUID(self.rules["stale"])
        rows = await connection.fetch(
            """SELECT t.id, t.anchor, e.moved_at FROM automation_timers t JOIN elements e ON e.id = t.element_id
                WHERE t.workspace_id = $1 AND t.rule_id = $2 AND e.stage_id = $3 AND t.due_at < now()""",
            self.workspace_id,
            rule_id,
            uuid.UUID(self.stage_ids["IN_PROGRESS"]),
        )
        held = [r["id"] for r in rows if r["anchor"] == r["moved_at"].isoformat()]
        ran = await connection.fetchval(
            "SELECT count(*) FROM automation_runs WHERE event_id = ANY($1) AND status = 'succeeded'", held
        )
        if ran != len(held):
            row.notes.append(f"rule stale: {len(held)} timers held, {ran} ran")
        row.runs_lost += len(held) - ran
        by_status = dict(
            await connection.fetch(
                "SELECT status::text, count(*) FROM automation_runs WHERE rule_id = $1 GROUP BY status", rule_id
            )
        )
        row.runs += by_status.get("succeeded", 0)
        if set(by_status) - {"succeeded"}:
            row.notes.append(f"rule stale: runs {by_status}")
            row.runs_lost += sum(n for status, n in by_status.items() if status != "succeeded")

    async def _effects(self, connection: asyncpg.Connection, row: Row) -> None:
        """Effects once per run: one task per run, one run per (event, rule), every element touched by set_fields."""
        ws = self.workspace_id
        row.runs_duplicated += await connection.fetchval(
            """SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM tasks WHERE workspace_id = $1
                 AND run_id IS NOT NULL GROUP BY run_id) per_run""",
            ws,
        )
        row.runs_duplicated += await connection.fetchval(
            """SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM automation_runs WHERE workspace_id = $1
                 GROUP BY event_id, rule_id) per_pair""",
            ws,
        )
        without_task = await connection.fetchval(
            """SELECT count(*) FROM automation_runs r WHERE r.workspace_id = $1 AND r.status = 'succeeded'
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.id)""",
            ws,
        )
        if without_task:
            row.notes.append(f"{without_task} succeeded runs left no task")
            row.runs_lost += without_task
        if "welcome" in self.rules:
            untouched = await connection.fetchval(
                """SELECT count(*) FROM elements e WHERE e.workspace_id = $1 AND NOT EXISTS (
                     SELECT 1 FROM element_values v WHERE v.element_id = e.id AND v.value_number = 1)""",
                ws,
            )
            if untouched:
                row.notes.append(f"{untouched} elements without the welcome rule's set_fields")
                row.runs_lost += untouched

    async def _deliveries(self, connection: asyncpg.Connection, row: Row) -> None:
        """Every webhook action's delivery landed at the receiver, each with one webhook-id however often sent."""
        ws = self.workspace_id
        deliveries = await connection.fetch(
            """SELECT message_id, status::text AS status, attempts, left(last_error, 200) AS error
                 FROM webhook_deliveries WHERE workspace_id = $1""",
            ws,
        )
        row.deliveries = len(deliveries)
        received = self.receiver.delivered()
        not_done = [d for d in deliveries if d["status"] != "succeeded"]
        unseen = [d for d in deliveries if d["status"] == "succeeded" and d["message_id"] not in received]
        # Runs of webhook rules that queued no delivery.
        hook_rules = [uuid.UUID(self.rules[n]) for n in ("welcome", "working", "later") if n in self.rules]
        missing = await connection.fetchval(
            """SELECT count(*) FROM automation_runs r WHERE r.rule_id = ANY($1) AND r.status = 'succeeded'
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.run_id = r.id)""",
            hook_rules,
        )
        altered = [i for i, bodies in self.receiver.bodies().items() if len(bodies) > 1]
        if not_done or unseen or missing or altered:
            row.notes.append(
                f"deliveries: {len(not_done)} not succeeded, {len(unseen)} never received, {missing} runs without one,"
                f" {len(altered)} webhook-ids with different bodies"
            )
        for delivery in not_done[:3]:
            seen = "received" if delivery["message_id"] in received else "never received"
            row.notes.append(
                f"delivery {delivery['message_id']} {delivery['status']} after {delivery['attempts']} attempts"
                f" ({seen}): {delivery['error']}"
            )
        row.deliveries_lost = len(not_done) + len(unseen) + missing + len(altered)


def api_back_seconds(ledger: Ledger, healed: list[float]) -> float | None:
    """The worst wait, over the faults, from the moment one was healed to the next acknowledged write."""
    worst = None
    times = sorted(ledger.ok_times)
    for moment in healed:
        later = next((t for t in times if t >= moment), None)
        if later is not None:
            worst = max(worst or 0.0, later - moment)
    return worst


async def inject_faults(
    count: int, inject: Callable[[int], Awaitable[None]], *, interval: tuple[float, float]
) -> list[float]:
    """`count` faults, one after another at random intervals; returns when each was healed (monotonic)."""
    healed = []
    for index in range(count):
        await asyncio.sleep(random.uniform(*interval))
        await inject(index)
        healed.append(time.monotonic())
    return healed
