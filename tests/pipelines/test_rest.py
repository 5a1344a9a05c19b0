from typing import Any

import httpx

from tests.factories import create_element, create_type, default_pipeline


async def deal_with_two_pipelines(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    await create_type(client, "deal", settings={"pipelines_enabled": True})
    second = await client.post(
        "/entity-types/deal/pipelines",
        json={
            "title": "Partners",
            "stages": [{"code": "OPEN", "title": "Open"}, {"code": "WON", "semantic": "success"}],
        },
    )
    assert second.status_code == 201, second.text
    return await default_pipeline(client, "deal"), second.json()


class TestPipelines:
    async def test_new_pipeline_without_stages_gets_the_default_four(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal", settings={"pipelines_enabled": True})
        created = await client.post("/entity-types/deal/pipelines", json={"title": "Second"})
        assert created.status_code == 201
        assert [s["code"] for s in created.json()["stages"]] == ["NEW", "IN_PROGRESS", "SUCCESS", "FAIL"]
        assert created.json()["is_default"] is False

    async def test_exactly_one_default(self, client: httpx.AsyncClient) -> None:
        _, second = await deal_with_two_pipelines(client)
        response = await client.patch(f"/pipelines/{second['id']}", json={"is_default": True})
        assert response.status_code == 200, response.text
        pipelines = (await client.get("/entity-types/deal/pipelines")).json()["items"]
        assert [p["id"] for p in pipelines if p["is_default"]] == [second["id"]]

    async def test_second_pipeline_needs_the_flag(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await client.post("/entity-types/deal/pipelines", json={"title": "Second"})
        assert response.status_code in (409, 422)

    async def test_delete_with_elements_needs_move_to(self, client: httpx.AsyncClient) -> None:
        first, second = await deal_with_two_pipelines(client)
        element = await create_element(
            client, "deal", title="x", pipeline_id=second["id"], stage_id=second["stages"][1]["id"]
        )
        refused = await client.delete(f"/pipelines/{second['id']}")
        assert refused.status_code == 409
        moved = await client.delete(f"/pipelines/{second['id']}", params={"move_to": first["id"]})
        assert moved.status_code == 204, moved.text
        after = (await client.get(f"/elements/{element['id']}")).json()
        assert after["pipeline_id"] == first["id"]
        assert after["stage_id"] in {s["id"] for s in first["stages"]}
        history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
        assert history[-1]["kind"] == "moved"
        assert history[-1]["data"]["to_stage_id"] == after["stage_id"]

    async def test_default_pipeline_cannot_be_deleted(self, client: httpx.AsyncClient) -> None:
        first, _ = await deal_with_two_pipelines(client)
        assert (await client.delete(f"/pipelines/{first['id']}")).status_code == 409

    async def test_foreign_pipeline_is_404(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        pipeline = await default_pipeline(client, "deal")
        assert (await other_client.get(f"/pipelines/{pipeline['id']}")).status_code == 404
        assert (await other_client.get(f"/pipelines/{pipeline['id']}/board")).status_code == 404
        assert (
            await other_client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "XX", "title": "X"})
        ).status_code == 404


class TestStages:
    async def test_add_update_and_reorder(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        pipeline = await default_pipeline(client, "deal")
        added = await client.post(
            f"/pipelines/{pipeline['id']}/stages", json={"code": "PROPOSAL", "title": "Proposal", "color": "#ffaa00"}
        )
        assert added.status_code == 201, added.text
        stage = added.json()
        patched = await client.patch(f"/stages/{stage['id']}", json={"title": "Offer sent"})
        assert patched.json()["title"] == "Offer sent"
        ids = [s["id"] for s in pipeline["stages"]]
        order = [ids[0], stage["id"], *ids[1:]]
        reordered = await client.put(f"/pipelines/{pipeline['id']}/stages/order", json={"stage_ids": order})
        assert reordered.status_code == 200, reordered.text
        listed = (await client.get(f"/pipelines/{pipeline['id']}/stages")).json()["items"]
        assert [s["id"] for s in listed] == order

    async def test_reorder_must_name_every_stage_once(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        pipeline = await default_pipeline(client, "deal")
        ids = [s["id"] for s in pipeline["stages"]]
        response = await client.put(f"/pipelines/{pipeline['id']}/stages/order", json={"stage_ids": ids[:2]})
        assert response.status_code == 422

    async def test_bad_semantic_and_duplicate_code(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        pipeline = await default_pipeline(client, "deal")
        bad = await client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "X", "semantic": "maybe"})
        assert bad.status_code == 422
        duplicate = await client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "NEW"})
        assert duplicate.status_code == 409

    async def test_delete_with_elements_needs_move_to_in_same_pipeline(self, client: httpx.AsyncClient) -> None:
        first, second = await deal_with_two_pipelines(client)
        element = await create_element(client, "deal", title="x")
        new_stage = first["stages"][0]
        assert (await client.delete(f"/stages/{new_stage['id']}")).status_code == 409
        foreign = await client.delete(f"/stages/{new_stage['id']}", params={"move_to": second["stages"][0]["id"]})
        assert foreign.status_code == 422
        moved = await client.delete(f"/stages/{new_stage['id']}", params={"move_to": first["stages"][1]["id"]})
        assert moved.status_code == 204, moved.text
        assert (await client.get(f"/elements/{element['id']}")).json()["stage_code"] == "IN_PROGRESS"

    async def test_viewer_cannot_change_stages(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        pipeline = await default_pipeline(client, "deal")
        response = await viewer_client.patch(f"/stages/{pipeline['stages'][0]['id']}", json={"title": "x"})
        assert response.status_code == 403
