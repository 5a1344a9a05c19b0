import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.kit import background
from app.scoring import learned, service
from app.scoring.models import ScoringModel
from tests.conftest import Tenant
from tests.factories import create_element, lead_type


def _outcome(rng: random.Random, industry: str, budget: float | None) -> bool:
    """A known signal: IT and bigger budgets convert; a missing budget hurts."""
    logit = -1.0 + {"it": 1.8, "bank": 0.3, "retail": -1.2}[industry]
    logit += 1.5 * ((budget - 5000) / 3000) if budget is not None else -1.0
    return rng.random() < 1 / (1 + math.exp(-logit))


async def _outcomes(client: httpx.AsyncClient, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        industry = rng.choice(["it", "bank", "retail"])
        budget = round(rng.uniform(0, 10000), 2) if rng.random() > 0.1 else None
        values: dict[str, Any] = {"industry": industry, "is_b2b": rng.random() < 0.5}
        if budget is not None:
            values["budget"] = budget
        stage = "SUCCESS" if _outcome(rng, industry, budget) else "FAIL"
        items.append({"op": "create", "data": {"title": f"lead {i}", "stage_code": stage, "values": values}})
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text


async def _trained(client: httpx.AsyncClient, model_id: str) -> dict[str, Any]:
    response = await client.post(f"/scoring/models/{model_id}/train")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "training"
    await background.drain()
    trained = (await client.get(f"/scoring/models/{response.json()['id']}")).json()
    return dict(trained)


class TestLearnedModel:
    async def test_learns_a_known_signal_and_its_stored_coefficients_reproduce_scores(
        self, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        await _outcomes(client, 600)
        created = await client.post(
            "/scoring/models",
            json={"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry", "budget", "is_b2b"]},
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "draft"
        model = await _trained(client, created.json()["id"])
        assert model["status"] == "trained", model["error"]
        metrics = model["metrics"]
        assert metrics["train_size"] + metrics["holdout_size"] == 600
        assert metrics["holdout_size"] == 120
        assert metrics["roc_auc"] > 0.75
        assert 0 < metrics["log_loss"] < math.log(2)
        assert len(metrics["calibration"]) == 10
        assert sum(b["count"] for b in metrics["calibration"]) == 120
        assert metrics["calibration"][-1]["observed_rate"] > metrics["calibration"][0]["observed_rate"]

        hot = await create_element(client, "lead", values={"industry": "it", "budget": 9500})
        cold = await create_element(client, "lead", values={"industry": "retail", "budget": 100})
        scores = {}
        for element in (hot, cold):
            response = await client.post(f"/elements/{element['id']}/score", json={"model_id": model["id"]})
            assert response.status_code == 200, response.text
            body = response.json()
            scores[element["id"]] = body["score"]
            # Explanations add up: baseline + contributions = logit(probability).
            total = body["baseline"] + sum(e["contribution"] for e in body["explanation"])
            assert math.isclose(total, math.log(body["probability"] / (1 - body["probability"])), abs_tol=1e-4)
            assert {e["feature"] for e in body["explanation"]} == {"industry", "budget", "is_b2b"}
            # The stored model, as plain data, reproduces the score.
            stored = learned.predict_proba(model["params"], [element["values"]])[0]
            assert math.isclose(stored, body["probability"], abs_tol=1e-6)
            assert body["score"] == learned.probability_to_score(float(stored))
        assert scores[hot["id"]] > 70 > 30 > scores[cold["id"]]
        explanation = (await client.post(f"/elements/{hot['id']}/score", json={"model_id": model["id"]})).json()
        industry = next(e for e in explanation["explanation"] if e["feature"] == "industry")
        assert (industry["value"], industry["contribution"] > 0) == ("it", True)

    async def test_retraining_makes_a_new_version_and_activation_scores_writes(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await _outcomes(client, 200, seed=3)
        created = (
            await client.post(
                "/scoring/models",
                json={"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry", "budget"]},
            )
        ).json()
        assert (await client.post(f"/scoring/models/{created['id']}/activate")).status_code == 409
        first = await _trained(client, created["id"])
        assert (first["id"], first["version"]) == (created["id"], 1)
        second = await _trained(client, created["id"])
        assert (second["version"], second["status"]) == (2, "trained")
        assert second["id"] != first["id"]
        assert (await client.post(f"/scoring/models/{second['id']}/activate")).status_code == 200
        element = await create_element(client, "lead", values={"industry": "it", "budget": 9000})
        assert element["score"] is not None
        assert element["score"] > 50

    async def test_too_few_outcomes_fail_with_a_reason(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await create_element(client, "lead", stage_code="SUCCESS", values={"industry": "it"})
        created = (
            await client.post(
                "/scoring/models",
                json={"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry"]},
            )
        ).json()
        model = await _trained(client, created["id"])
        assert model["status"] == "failed"
        assert "at least 5" in model["error"]


async def test_scheduled_retraining_makes_and_activates_a_new_version(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await lead_type(client)
    await _outcomes(client, 300, seed=11)
    created = (
        await client.post(
            "/scoring/models",
            json={"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry", "budget"]},
        )
    ).json()
    first = await _trained(client, created["id"])
    assert (await client.post(f"/scoring/models/{first['id']}/activate")).status_code == 200
    # Same data, same seed: the new version is as good, so it takes over.
    report = await service.retrain_active_models(app.state.engine, workspace_id=tenant.workspace_id)
    assert [(r["from_version"], r["to_version"], r["status"], r["activated"]) for r in report] == [
        (1, 2, "trained", True)
    ]
    models = (await client.get("/scoring/models", params={"entity_type": "lead"})).json()["items"]
    assert [(m["version"], m["active"]) for m in models] == [(1, False), (2, True)]
    assert models[0]["params"] == models[1]["params"]


async def test_a_lost_training_run_can_be_taken_over(app: FastAPI, client: httpx.AsyncClient) -> None:
    await lead_type(client)
    created = (
        await client.post(
            "/scoring/models", json={"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry"]}
        )
    ).json()

    async def mark_training(minutes_ago: int) -> None:
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(ScoringModel)
                .where(ScoringModel.id == created["id"])
                .values(status="training", training_started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago))
            )
            await session.commit()

    await mark_training(1)
    assert (await client.post(f"/scoring/models/{created['id']}/train")).status_code == 409
    await mark_training(120)  # its process died: past the lease
    assert (await client.post(f"/scoring/models/{created['id']}/train")).status_code == 202
    await background.drain()
    assert (await client.get(f"/scoring/models/{created['id']}")).json()["status"] == "failed"  # no outcomes yet
