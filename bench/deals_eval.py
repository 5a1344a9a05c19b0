"""Evaluate deal close probability on generated deal histories with a known answer, through the API.

    DATABASE_URL=postgresql://… python3 -m bench.deals_eval [--closed 2000] [--open 1000] [--seed 1]

The generator: a deal of segment `enterprise` or `smb` (and an `amount` that means nothing) enters NEW, then
IN_PROGRESS, then PROPOSAL. On entering a stage its fate there is drawn: it advances with a probability of the stage
and segment, else it will be lost; a deal that will advance stays an exponential time with a short mean, one that
will be lost stalls (a longer mean). After PROPOSAL it is won. So the true probability of winning, for a deal in
stage s for d days, is P(advance | still there after d days) × the advance rates of the later stages — it falls the
longer a deal sits in a stage, which a per-stage win rate cannot see.

The script imports `--closed` finished deals with their stage history (created through the batch API, then their
history and timestamps written as they happened), trains a learned model on `stage_code`, `days_in_stage`,
`stage_moves`, `age_days`, `segment` and `amount` (algorithm `auto`), activates it, then imports `--open` deals
caught in the middle of their life (their future is drawn but not stored) and asks `close_probability` for them.
It prints, on those open deals: ROC AUC, Brier score and a reliability table of the model's probability, of the
simple baseline (each stage's historical win rate among the closed deals) and of the true probability.
"""

import argparse
import asyncio
import math
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

PROCESS = ("NEW", "IN_PROGRESS", "PROPOSAL")
SEGMENTS = ("enterprise", "smb")
ADVANCE = {
    "NEW": {"enterprise": 0.75, "smb": 0.6},
    "IN_PROGRESS": {"enterprise": 0.7, "smb": 0.55},
    "PROPOSAL": {"enterprise": 0.7, "smb": 0.6},
}
DAYS_TO_ADVANCE = {"NEW": 4.0, "IN_PROGRESS": 8.0, "PROPOSAL": 12.0}
DAYS_TO_LOSE = {"NEW": 12.0, "IN_PROGRESS": 25.0, "PROPOSAL": 35.0}
FEATURES = ["stage_code", "days_in_stage", "stage_moves", "age_days", "segment", "amount"]


@dataclass
class Deal:
    segment: str
    amount: float
    stays: list[tuple[str, float]]  # (stage, days there), the process stages in order
    won: bool
    # Open deals: where they are now (None: closed).
    stage_now: str | None = None
    days_in_stage: float = 0.0
    age_days: float = 0.0
    moves: int = 0
    values: dict[str, Any] = field(default_factory=dict)


def simulate(rng: random.Random) -> Deal:
    segment = rng.choice(SEGMENTS) if rng.random() < 0.5 else "smb"  # 25% enterprise, 75% smb
    stays: list[tuple[str, float]] = []
    for stage in PROCESS:
        advances = rng.random() < ADVANCE[stage][segment]
        mean = DAYS_TO_ADVANCE[stage] if advances else DAYS_TO_LOSE[stage]
        stays.append((stage, rng.expovariate(1 / mean)))
        if not advances:
            return Deal(segment, round(rng.uniform(500, 50000), 2), stays, won=False)
    return Deal(segment, round(rng.uniform(500, 50000), 2), stays, won=True)


def true_probability(stage: str, days: float, segment: str) -> float:
    """P(won | in `stage` for `days` days), from the generator's own rates."""
    advance = ADVANCE[stage][segment]
    stays_if_advancing = advance * math.exp(-days / DAYS_TO_ADVANCE[stage])
    stays_if_losing = (1 - advance) * math.exp(-days / DAYS_TO_LOSE[stage])
    probability = stays_if_advancing / (stays_if_advancing + stays_if_losing)
    for later in PROCESS[PROCESS.index(stage) + 1 :]:
        probability *= ADVANCE[later][segment]
    return probability


def catch_open(rng: random.Random, deal: Deal) -> Deal:
    """The deal at a moment drawn uniformly over its process life: where it is then (its future stays unknown).
    `deals` keeps a deal with a probability proportional to its life first, as the open deals on any given day are
    (a deal open for 60 days is seen open on twice as many days as one open for 30)."""
    total = sum(days for _, days in deal.stays)
    moment = rng.uniform(0, total)
    elapsed = 0.0
    for index, (stage, days) in enumerate(deal.stays):
        if moment <= elapsed + days or index == len(deal.stays) - 1:
            deal.stage_now, deal.days_in_stage, deal.moves = stage, moment - elapsed, index
            deal.stays = deal.stays[:index]
            deal.age_days = moment
            return deal
        elapsed += days
    raise AssertionError("unreachable")


OPEN_LIFE_CAP = 200.0  # days: longer lives are kept as often as this one (a handful)


def deals(count: int, seed: int, *, open_: bool = False) -> list[Deal]:
    rng = random.Random(seed)
    if not open_:
        return [simulate(rng) for _ in range(count)]
    out: list[Deal] = []
    while len(out) < count:
        deal = simulate(rng)
        if rng.random() < min(1.0, sum(days for _, days in deal.stays) / OPEN_LIFE_CAP):
            out.append(catch_open(rng, deal))
    return out


async def deal_type(client: httpx.AsyncClient) -> dict[str, uuid.UUID]:
    """A `deal` type (NEW, IN_PROGRESS, PROPOSAL, SUCCESS, FAIL) with a `segment` field: stage code -> id."""
    (await client.post("/entity-types", json={"code": "deal", "title": "Deal"})).raise_for_status()
    segment = {"code": "segment", "type": "enum", "options": [{"value": s} for s in SEGMENTS]}
    (await client.post("/entity-types/deal/fields", json=segment)).raise_for_status()
    pipelines = (await client.get("/entity-types/deal/pipelines")).json()["items"]
    pipeline = next(p for p in pipelines if p["is_default"])
    (await client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "PROPOSAL"})).raise_for_status()
    stages = (await client.get(f"/pipelines/{pipeline['id']}/stages")).json()["items"]
    return {s["code"]: uuid.UUID(s["id"]) for s in stages}


async def load_deals(
    client: httpx.AsyncClient, sessionmaker: Any, stages: dict[str, uuid.UUID], batch: list[Deal], now: datetime
) -> list[uuid.UUID]:
    """Create the deals through the batch API, then give them the stage history they lived: a closed deal ended
    somewhere in the last 400 days, an open one is where it is now."""
    from sqlalchemy import delete, insert, select, update

    from app.elements.models import Element, StageHistory

    rng = random.Random(len(batch))
    ids: list[uuid.UUID] = []
    for start in range(0, len(batch), 500):
        chunk = batch[start : start + 500]
        items = [
            {
                "op": "create",
                "data": {
                    "title": f"deal {start + i}",
                    "stage_code": d.stage_now or ("SUCCESS" if d.won else "FAIL"),
                    "amount": d.amount,
                    "values": {"segment": d.segment},
                },
            }
            for i, d in enumerate(chunk)
        ]
        response = await client.post("/entity-types/deal/elements/batch", json={"items": items})
        response.raise_for_status()
        ids.extend(uuid.UUID(e["id"]) for e in response.json()["items"])
    history: list[dict[str, Any]] = []
    timestamps: list[dict[str, Any]] = []
    for element_id, deal in zip(ids, batch, strict=True):
        lived = sum(days for _, days in deal.stays) + deal.days_in_stage
        clock = now - timedelta(days=lived + (0 if deal.stage_now else rng.uniform(0.5, 400)))
        created, previous = clock, None
        path = [stage for stage, _ in deal.stays] + [deal.stage_now or ("SUCCESS" if deal.won else "FAIL")]
        for index, stage in enumerate(path):
            history.append(
                {
                    "workspace_id": None,
                    "element_id": element_id,
                    "from_stage_id": stages[previous] if previous else None,
                    "to_stage_id": stages[stage],
                    "moved_at": clock,
                }
            )
            moved_at, previous = clock, stage
            if index < len(deal.stays):
                clock += timedelta(days=deal.stays[index][1])
        timestamps.append({"id": element_id, "created_at": created, "moved_at": moved_at, "updated_at": moved_at})
    async with sessionmaker() as session:
        placed = (
            await session.execute(select(Element.workspace_id, Element.pipeline_id).where(Element.id == ids[0]))
        ).one()
        workspace_id, pipeline_id = placed
        for row in history:
            row["workspace_id"] = workspace_id
            row["from_pipeline_id"] = pipeline_id if row["from_stage_id"] else None
            row["to_pipeline_id"] = pipeline_id
        await session.execute(delete(StageHistory).where(StageHistory.element_id.in_(ids)))
        await session.execute(insert(StageHistory), history)
        await session.execute(update(Element), timestamps)
        await session.commit()
    return ids


def reliability(y: np.ndarray, p: np.ndarray, groups: int = 10) -> list[tuple[float, float, int]]:
    order = np.argsort(p, kind="mergesort")
    return [(float(p[c].mean()), float(y[c].mean()), int(c.size)) for c in np.array_split(order, groups) if c.size]


async def evaluate(closed: int, open_count: int, seed: int) -> None:
    from app.auth.actor import system_actor
    from app.db import unit_of_work
    from app.kit import background
    from app.main import create_app
    from app.scoring import service as scoring_service
    from app.scoring.learned import brier, log_loss, roc_auc
    from app.settings import get_settings
    from app.workspaces import service as workspace_service

    app = create_app(get_settings())
    started = time.monotonic()
    now = datetime.now(UTC)
    async with app.router.lifespan_context(app):
        async with unit_of_work(app.state.sessionmaker) as session:
            workspace, key = await workspace_service.create_workspace(session, name="deals-eval")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://eval/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=600,
        ) as client:
            stages = await deal_type(client)
            history = deals(closed, seed)
            await load_deals(client, app.state.sessionmaker, stages, history, now)
            print(f"imported {closed} closed deals with their stage history ({sum(d.won for d in history)} won)")
            body = {"name": "close", "entity_type": "deal", "kind": "learned", "features": FEATURES}
            created = (await client.post("/scoring/models", json=body)).json()
            clock = time.monotonic()
            queued = (await client.post(f"/scoring/models/{created['id']}/train")).json()
            await background.drain()
            model = (await client.get(f"/scoring/models/{queued['id']}")).json()
            if model["status"] != "trained":
                sys.exit(f"training failed: {model['error']}")
            metrics = model["metrics"]
            print(f"\ntrained in {time.monotonic() - clock:.1f} s; its own hold-out (snapshots of held-out deals):")
            print(
                f"  {metrics['holdout_size']} snapshots of {metrics['holdout_elements']} deals, "
                f"kept {metrics['algorithm']}"
            )
            for c in metrics["candidates"]:
                print(f"    {c['algorithm']:<24} ROC AUC {c['roc_auc']}, Brier {c['brier']}, log loss {c['log_loss']}")
            b = metrics["baseline"]
            print(f"    {b['name']:<24} ROC AUC {b['roc_auc']}, Brier {b['brier']}, log loss {b['log_loss']}")
            (await client.post(f"/scoring/models/{model['id']}/activate")).raise_for_status()
            await background.drain()

            open_deals = deals(open_count, seed + 1, open_=True)
            ids = await load_deals(client, app.state.sessionmaker, stages, open_deals, now)
            async with unit_of_work(app.state.sessionmaker) as session:
                found = await scoring_service.close_probability(session, system_actor(workspace.id), ids, now=now)
            example = (await client.post(f"/elements/{ids[0]}/close-probability")).json()

    y = np.array([1.0 if d.won else 0.0 for d in open_deals])
    model_p = np.array([found[i] for i in ids])
    oracle = np.array([true_probability(d.stage_now or "", d.days_in_stage, d.segment) for d in open_deals])
    rates = {}
    for stage in PROCESS:  # the baseline: each stage's win rate among the closed deals that were in it
        were_there = [d for d in history if stage in [s for s, _ in d.stays]]
        rates[stage] = sum(d.won for d in were_there) / max(1, len(were_there))
    baseline = np.array([rates[d.stage_now or ""] for d in open_deals])
    print(f"\nclosing note: {open_count} open deals caught mid-way, {int(y.sum())} of them go on to win")
    print(f"  {'':<28}{'ROC AUC':>9}{'Brier':>9}{'log loss':>10}")
    for name, p in (
        ("model (close_probability)", model_p),
        ("stage win rate (baseline)", baseline),
        ("true probability", oracle),
    ):
        print(f"  {name:<28}{roc_auc(y, p):>9.4f}{brier(y, p):>9.4f}{log_loss(y, p):>10.4f}")
    print(f"  mean |model - true probability|: {float(np.mean(np.abs(model_p - oracle))):.4f}")
    print("  reliability (deciles of the model's probability: mean predicted -> observed, n):")
    for predicted, observed, n in reliability(y, model_p):
        print(f"    {predicted:.3f} -> {observed:.3f}  (n={n})")
    top = ", ".join(f"{e['feature']} {e['contribution']:+.2f}" for e in example["explanation"][:3])
    print(f"  one deal, as explained on its timeline: p={example['probability']:.3f} ({example['stage_code']}): {top}")
    print(f"  (done in {time.monotonic() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--closed", type=int, default=2000)
    parser.add_argument("--open", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (it is migrated, and a new workspace is used)")
    from app.cli import run_migrations
    from app.settings import get_settings

    run_migrations(get_settings().database_url)
    asyncio.run(evaluate(args.closed, args.open, args.seed))


if __name__ == "__main__":
    main()
