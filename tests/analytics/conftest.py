"""A `deal` type with a five-stage pipeline, three people, and histories generated with known answers.

`generate` makes a seeded history (creations, moves forward, skips, losses, returns to an earlier stage) in plain
Python; `seed` writes it into PostgreSQL as the element service would (element rows, then stage_history rows in
statements of several rows, so the trigger's look-ups across rows and statements are exercised); `expected_*` compute
the answers from the same Python events, independently of the rollups.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth.tokens import AccessTokens
from app.db import unit_of_work
from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import create_type, create_user, created

STAGES = [
    ("NEW", "process"),
    ("QUALIFIED", "process"),
    ("PROPOSAL", "process"),
    ("WON", "success"),
    ("LOST", "failure"),
]
PROCESS = ["NEW", "QUALIFIED", "PROPOSAL"]
_TOKENS: dict[str, AccessTokens] = {}


@pytest.fixture(autouse=True)
def token_signer(settings: Settings) -> None:
    _TOKENS["signer"] = AccessTokens(settings.jwt_secret, settings.ACCESS_TOKEN_MINUTES * 60)


def person_token(tenant: Tenant, user_id: str) -> str:
    return _TOKENS["signer"].issue(uuid.UUID(user_id), tenant.workspace_id).token


@dataclass
class Deals:
    app: FastAPI
    tenant: Tenant
    client: httpx.AsyncClient
    type_id: str
    pipeline_id: str
    stages: dict[str, str]  # code -> id
    users: list[str]

    def code_of(self, stage_id: str | None) -> str | None:
        return next((code for code, sid in self.stages.items() if sid == stage_id), None)


async def make_deals(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> Deals:
    entity_type = await create_type(client, "deal", settings={"pipelines_enabled": True})
    await client.post(
        "/entity-types/deal/fields",
        json={"code": "channel", "type": "enum", "options": [{"value": "web"}, {"value": "partner"}]},
    )
    body = {
        "title": "Sales",
        "stages": [{"code": code, "title": code.title(), "semantic": semantic} for code, semantic in STAGES],
    }
    pipeline = created(await client.post("/entity-types/deal/pipelines", json=body))
    stages = (await client.get(f"/pipelines/{pipeline['id']}/stages")).json()["items"]
    users = [(await create_user(client, f"Seller {n} {uuid.uuid4().hex[:6]}"))["id"] for n in range(3)]
    return Deals(
        app=app,
        tenant=tenant,
        client=client,
        type_id=entity_type["id"],
        pipeline_id=pipeline["id"],
        stages={s["code"]: s["id"] for s in stages},
        users=users,
    )


@pytest.fixture
async def deals(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> Deals:
    return await make_deals(app, tenant, client)


# --- generated histories ----------------------------------------------------------------------------------------------


@dataclass
class Move:
    at: datetime
    from_code: str | None
    to_code: str


@dataclass
class Deal:
    id: uuid.UUID
    created_at: datetime
    assignee: str | None
    amount: float
    score: int | None
    channel: str
    source: str
    moves: list[Move] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return self.moves[-1].to_code


def generate(users: list[str], *, seed: int, count: int, first_day: date, days: int) -> list[Deal]:
    """Deals created over `days` days from `first_day`, each walking the pipeline with random waits (minutes to a
    week): forward one stage (sometimes two), lost, won, back to the previous stage, or still open at the end."""
    rng = random.Random(seed)
    deals: list[Deal] = []
    for _ in range(count):
        created_at = datetime.combine(first_day, datetime.min.time(), UTC) + timedelta(
            seconds=rng.uniform(0, days * 86400)
        )
        wins = rng.random() < 0.5
        deal = Deal(
            id=uuid.uuid4(),
            created_at=created_at,
            assignee=rng.choice([*users, None]),
            amount=round(rng.uniform(100, 5000), 2),
            # Scores lean to the outcome (AUC well above 0.5, not 1); a few deals are never scored.
            score=None if rng.random() < 0.1 else max(1, min(100, int(rng.gauss(65 if wins else 40, 20)))),
            channel=rng.choice(["web", "partner"]),
            source=rng.choice(["ads", "referral", "event"]),
        )
        deal.moves.append(Move(created_at, None, "NEW"))
        at = created_at
        stage = "NEW"
        for _ in range(8):
            at += timedelta(seconds=rng.lognormvariate(10.5, 1.2))
            roll = rng.random()
            position = PROCESS.index(stage)
            if roll < 0.12:
                break  # still open
            if roll < 0.3:
                target = "LOST"
            elif roll < 0.38 and position > 0:
                target = PROCESS[position - 1]  # back a stage: it will re-enter the next one
            elif position == len(PROCESS) - 1:
                target = "WON" if wins or rng.random() < 0.3 else "LOST"
            elif roll < 0.45 and position + 2 < len(PROCESS):
                target = PROCESS[position + 2]  # skips a stage
            else:
                target = PROCESS[position + 1]
            deal.moves.append(Move(at, stage, target))
            stage = target
            if stage in ("WON", "LOST"):
                break
        deals.append(deal)
    return deals


async def seed(deals: Deals, generated: list[Deal], *, now: datetime | None = None) -> None:
    """The deals as rows: elements in their last stage, then their history in time order, a few hundred rows per
    statement. Moves after `now` are dropped (they have not happened yet)."""
    if now is not None:
        for deal in generated:
            deal.moves = [m for m in deal.moves if m.at <= now]
    async with unit_of_work(deals.app.state.sessionmaker) as session:
        await session.execute(
            text(
                """INSERT INTO elements (id, workspace_id, entity_type_id, pipeline_id, stage_id, title, assigned_to,
                    amount, source, score, values, version, created_at, updated_at, moved_at)
                SELECT id, :ws, :type_id, :pipeline_id, stage_id, 'Deal', assignee, amount, source, score,
                    jsonb_build_object('channel', channel), 1, created_at, moved_at, moved_at
                FROM unnest(CAST(:ids AS uuid[]), CAST(:stage_ids AS uuid[]), CAST(:assignees AS uuid[]),
                    CAST(:amounts AS numeric[]), CAST(:sources AS text[]), CAST(:scores AS int[]),
                    CAST(:channels AS text[]), CAST(:created AS timestamptz[]), CAST(:moved AS timestamptz[]))
                    AS u(id, stage_id, assignee, amount, source, score, channel, created_at, moved_at)"""
            ),
            {
                "ws": deals.tenant.workspace_id,
                "type_id": deals.type_id,
                "pipeline_id": deals.pipeline_id,
                "ids": [d.id for d in generated],
                "stage_ids": [deals.stages[d.stage] for d in generated],
                "assignees": [d.assignee for d in generated],
                "amounts": [d.amount for d in generated],
                "sources": [d.source for d in generated],
                "scores": [d.score for d in generated],
                "channels": [d.channel for d in generated],
                "created": [d.created_at for d in generated],
                "moved": [d.moves[-1].at for d in generated],
            },
        )
        rows = sorted(((move.at, deal, move) for deal in generated for move in deal.moves), key=lambda item: item[0])
        for start in range(0, len(rows), 150):
            chunk = rows[start : start + 150]
            await session.execute(
                text(
                    """INSERT INTO stage_history (workspace_id, element_id, from_pipeline_id, from_stage_id,
                        to_pipeline_id, to_stage_id, moved_by, moved_at)
                    SELECT :ws, e, CASE WHEN f IS NULL THEN NULL ELSE CAST(:pipeline_id AS uuid) END, f,
                        :pipeline_id, t, by, at
                    FROM unnest(CAST(:elements AS uuid[]), CAST(:froms AS uuid[]), CAST(:tos AS uuid[]),
                        CAST(:bys AS uuid[]), CAST(:ats AS timestamptz[])) AS u(e, f, t, by, at)
                    ORDER BY at"""
                ),
                {
                    "ws": deals.tenant.workspace_id,
                    "pipeline_id": deals.pipeline_id,
                    "elements": [deal.id for _, deal, _ in chunk],
                    "froms": [deals.stages[m.from_code] if m.from_code else None for _, _, m in chunk],
                    "tos": [deals.stages[m.to_code] for _, _, m in chunk],
                    # Every third move is a rule's (no author), the rest a person's.
                    "bys": [None if n % 3 == 0 else deals.users[0] for n in range(start, start + len(chunk))],
                    "ats": [at for at, _, _ in chunk],
                },
            )


# --- the answers, from the generated events ---------------------------------------------------------------------------


def in_period(at: datetime, start: date, end: date) -> bool:
    return start <= at.astimezone(UTC).date() <= end


def expected_funnel(generated: list[Deal], start: date, end: date, *, key: Any = None) -> dict[str, dict[str, int]]:
    """Per stage: entered (first time ever, in the period), reentered, exited, lost and won (moves out of it)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for deal in generated:
        if key is not None and not key(deal):
            continue
        seen: set[str] = set()
        for move in deal.moves:
            first = move.to_code not in seen
            seen.add(move.to_code)
            if not in_period(move.at, start, end):
                continue
            counts[move.to_code]["entered" if first else "reentered"] += 1
            if first:
                counts[move.to_code]["amount_cents"] += round(deal.amount * 100)
            if move.from_code is None:
                counts[move.to_code]["created"] += 1
            else:
                counts[move.from_code]["exited"] += 1
                if move.to_code == "LOST":
                    counts[move.from_code]["lost"] += 1
                if move.to_code == "WON":
                    counts[move.from_code]["won"] += 1
    return counts


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_stays(generated: list[Deal], start: date, end: date, *, key: Any = None) -> dict[str, list[float]]:
    """Seconds spent in each stage, by the moves out of it in the period."""
    stays: dict[str, list[float]] = defaultdict(list)
    for deal in generated:
        if key is not None and not key(deal):
            continue
        for before, move in zip(deal.moves, deal.moves[1:], strict=False):
            if in_period(move.at, start, end):
                stays[move.from_code or ""].append((move.at - before.at).total_seconds())
    return stays


def expected_closes(generated: list[Deal], start: date, end: date) -> dict[str, list[float]]:
    """Seconds from creation to the first entry into WON / LOST, in the period."""
    closes: dict[str, list[float]] = defaultdict(list)
    for deal in generated:
        seen: set[str] = set()
        for move in deal.moves:
            if move.to_code in ("WON", "LOST") and move.to_code not in seen and in_period(move.at, start, end):
                closes[move.to_code].append((move.at - deal.created_at).total_seconds())
            seen.add(move.to_code)
    return closes
