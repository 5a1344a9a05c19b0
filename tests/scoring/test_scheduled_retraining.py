"""The worker's `scoring.retrain` cron job, called directly: it retrains the models whose settings ask for it."""

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.scoring.models import ScoringModel
from tests.factories import lead_type
from tests.scoring.test_learned import _outcomes, _trained
from workers.main import JobContext, retrain_models


async def _model(client: httpx.AsyncClient, name: str, **training: Any) -> dict[str, Any]:
    response = await client.post(
        "/scoring/models",
        json={"name": name, "entity_type": "lead", "kind": "learned", "features": ["industry", "budget"]}
        | ({"training": training} if training else {}),
    )
    assert response.status_code == 201, response.text
    return await _trained(client, response.json()["id"])


async def _age(app: FastAPI, model_id: str, hours: float) -> None:
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(ScoringModel)
            .where(ScoringModel.id == model_id)
            .values(
                created_at=datetime.now(UTC) - timedelta(hours=hours),
                training_started_at=datetime.now(UTC) - timedelta(hours=hours),
            )
        )
        await session.commit()


async def test_the_cron_job_retrains_only_active_models_whose_period_has_passed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await lead_type(client)
    await _outcomes(client, 300, seed=11)
    scheduled = await _model(client, "ml", retrain_every_hours=24)
    assert scheduled["training"]["retrain_every_hours"] == 24
    assert (await client.post(f"/scoring/models/{scheduled['id']}/activate")).status_code == 200
    ctx = cast(JobContext, {"engine": app.state.engine})

    # Fresh: not due yet.
    assert await retrain_models(ctx) == []
    await _age(app, scheduled["id"], 25)
    report = await retrain_models(ctx)
    assert [(r["model"], r["from_version"], r["to_version"], r["status"], r["activated"]) for r in report] == [
        ("ml", 1, 2, "trained", True)
    ]
    models = (await client.get("/scoring/models", params={"entity_type": "lead"})).json()["items"]
    assert [(m["version"], m["active"], m["status"]) for m in models] == [(1, False, "trained"), (2, True, "trained")]
    # The new version carries the setting, and is itself fresh: nothing more to do.
    assert models[1]["training"]["retrain_every_hours"] == 24
    assert await retrain_models(ctx) == []


async def test_models_without_the_setting_or_not_active_are_left_alone(app: FastAPI, client: httpx.AsyncClient) -> None:
    await lead_type(client)
    await _outcomes(client, 300, seed=3)
    plain = await _model(client, "plain")
    inactive = await _model(client, "inactive", retrain_every_hours=1)
    assert (await client.post(f"/scoring/models/{plain['id']}/activate")).status_code == 200
    for model in (plain, inactive):
        await _age(app, model["id"], 48)
    assert await retrain_models(cast(JobContext, {"engine": app.state.engine})) == []
    versions = [m["version"] for m in (await client.get("/scoring/models")).json()["items"]]
    assert versions == [1, 1]


async def test_a_bad_period_is_refused(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    response = await client.post(
        "/scoring/models",
        json={
            "name": "ml",
            "entity_type": "lead",
            "kind": "learned",
            "features": ["industry"],
            "training": {"retrain_every_hours": 0},
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].endswith("retrain_every_hours")
