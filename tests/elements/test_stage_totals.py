"""The unfiltered board reads stage totals kept by triggers; they must always equal a real count over the elements."""

import json
from typing import Any

import httpx

from tests.factories import create_element, default_pipeline, lead_type

# Matches every element, so the board counts the rows instead of reading the kept totals.
EVERYTHING = json.dumps({"field": "version", "op": "gte", "value": 1})


async def _totals(client: httpx.AsyncClient, pipeline_id: str, **params: Any) -> dict[str, tuple[int, float]]:
    response = await client.get(f"/pipelines/{pipeline_id}/board", params={"per_stage": 0, **params})
    assert response.status_code == 200, response.text
    return {c["stage"]["code"]: (c["count"], c["amount_sum"]) for c in response.json()["stages"]}


async def _assert_kept_equals_counted(client: httpx.AsyncClient, pipeline_id: str) -> dict[str, tuple[int, float]]:
    kept = await _totals(client, pipeline_id)
    assert kept == await _totals(client, pipeline_id, filter=EVERYTHING)
    return kept


async def test_totals_follow_creates_moves_updates_deletes_and_restores(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    pipeline = (await default_pipeline(client, "lead"))["id"]
    batch = [{"op": "create", "data": {"title": f"b{i}", "amount": 10}} for i in range(4)]
    response = await client.post("/entity-types/lead/elements/batch", json={"items": batch})
    assert response.status_code == 200, response.text
    first = await create_element(client, "lead", title="one", amount=100)
    second = await create_element(client, "lead", title="two", amount=1)
    assert (await _assert_kept_equals_counted(client, pipeline))["NEW"] == (6, 141)

    await client.post(f"/elements/{first['id']}/move", json={"stage_code": "SUCCESS"})
    await client.patch(f"/elements/{first['id']}", json={"amount": 250})
    await client.patch(f"/elements/{second['id']}", json={"values": {"budget": 5}})  # no change to the totals
    totals = await _assert_kept_equals_counted(client, pipeline)
    assert totals["NEW"] == (5, 41)
    assert totals["SUCCESS"] == (1, 250)

    assert (await client.delete(f"/elements/{first['id']}")).status_code == 204  # to the recycle bin
    assert (await _assert_kept_equals_counted(client, pipeline))["SUCCESS"] == (0, 0)
    assert (await client.post(f"/elements/{first['id']}/restore")).status_code == 200
    assert (await _assert_kept_equals_counted(client, pipeline))["SUCCESS"] == (1, 250)


async def test_totals_are_per_workspace(client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
    await lead_type(client)
    await lead_type(other_client)
    await create_element(client, "lead", title="mine", amount=7)
    pipeline = (await default_pipeline(other_client, "lead"))["id"]
    assert (await _assert_kept_equals_counted(other_client, pipeline))["NEW"] == (0, 0)
