"""The type's active model does not get worse: within a training run (trees only when they beat the logistic model)
and across retraining (a clearly worse version does not take over)."""

import random

import httpx
from fastapi import FastAPI

from app.scoring import service
from tests.conftest import Tenant
from tests.factories import lead_type
from tests.scoring.test_learned import _outcomes, _trained


async def _noise(client: httpx.AsyncClient, n: int) -> None:
    """Leads whose outcome is a coin flip: they teach nothing and blur the signal."""
    rng = random.Random(5)
    items = [
        {
            "op": "create",
            "data": {
                "title": f"noise {i}",
                "stage_code": "SUCCESS" if rng.random() < 0.5 else "FAIL",
                "values": {"industry": rng.choice(["it", "bank", "retail"]), "budget": rng.uniform(0, 10000)},
            },
        }
        for i in range(n)
    ]
    assert (await client.post("/entity-types/lead/elements/batch", json={"items": items})).status_code == 200


async def test_a_worse_retrained_version_does_not_replace_the_active_one(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await lead_type(client)
    await _outcomes(client, 300, seed=11)
    body = {"name": "ml", "entity_type": "lead", "kind": "learned", "features": ["industry", "budget"]}
    first = await _trained(client, (await client.post("/scoring/models", json=body)).json()["id"])
    # Both algorithms were fitted on the same split; the one kept is named everywhere.
    assert {c["algorithm"] for c in first["metrics"]["candidates"]} == {
        "logistic_regression_l2",
        "gradient_boosted_trees",
    }
    [kept] = [c for c in first["metrics"]["candidates"] if c["chosen"]]
    assert first["algorithm"] == first["params"]["algorithm"] == first["metrics"]["algorithm"] == kept["algorithm"]
    assert first["metrics"]["roc_auc"] == kept["roc_auc"]
    assert (await client.post(f"/scoring/models/{first['id']}/activate")).status_code == 200

    await _noise(client, 900)
    report = await service.retrain_active_models(app.state.engine, workspace_id=tenant.workspace_id)
    [entry] = report
    assert (entry["status"], entry["activated"]) == ("trained", False)
    old_auc, new_auc = entry["roc_auc"]
    assert new_auc < old_auc - service.AUC_TOLERANCE
    models = (await client.get("/scoring/models", params={"entity_type": "lead"})).json()["items"]
    assert [(m["version"], m["active"]) for m in models] == [(1, True), (2, False)]
