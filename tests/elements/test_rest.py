import json
from typing import Any

import httpx

from tests.factories import create_element, create_field, create_type, default_pipeline, lead_type


class TestCreateElement:
    async def test_creates_in_default_pipeline_first_stage(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="ACME", values={"budget": 1500.5, "industry": "it"})
        pipeline = await default_pipeline(client, "lead")
        assert element["pipeline_id"] == pipeline["id"]
        assert element["stage_code"] == "NEW"
        assert element["values"] == {"budget": 1500.5, "industry": "it"}
        assert element["version"] == 1

    async def test_reports_every_problem_at_once_and_writes_nothing(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await create_field(client, "lead", "phone", "phone", required=True)
        response = await client.post(
            "/entity-types/lead/elements",
            json={"title": "x", "values": {"budget": "lots", "industry": "farm", "nope": 1, "email": "not-an-email"}},
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        fields = {e["field"]: e["message"] for e in response.json()["errors"]}
        assert set(fields) == {"values.budget", "values.industry", "values.nope", "values.email", "values.phone"}
        assert "required" in fields["values.phone"]
        listed = await client.get("/entity-types/lead/elements")
        assert listed.json()["items"] == []

    async def test_range_and_default(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_field(client, "deal", "discount", "integer", min=0, max=50, default=5)
        created = await create_element(client, "deal", title="with default")
        assert created["values"] == {"discount": 5}
        response = await client.post("/entity-types/deal/elements", json={"values": {"discount": 80}})
        assert response.status_code == 422
        assert response.json()["errors"][0]["message"] == "must be at most 50"

    async def test_stage_of_another_pipeline_is_refused(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal", settings={"pipelines_enabled": True})
        second = (await client.post("/entity-types/deal/pipelines", json={"title": "Partners"})).json()
        first = await default_pipeline(client, "deal")
        response = await client.post(
            "/entity-types/deal/elements",
            json={"pipeline_id": first["id"], "stage_id": second["stages"][1]["id"]},
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "stage_id"

    async def test_unknown_type_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/entity-types/nothing/elements", json={})
        assert response.status_code == 404

    async def test_reference_must_point_to_target_type_in_same_workspace(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "company")
        await create_type(client, "contact")
        await create_field(client, "contact", "company", "reference", target_type="company")
        company = await create_element(client, "company", title="ACME")
        contact = await create_element(client, "contact", title="Ann", values={"company": company["id"]})
        assert contact["values"]["company"] == company["id"]

        wrong_type = await client.post("/entity-types/contact/elements", json={"values": {"company": contact["id"]}})
        assert wrong_type.status_code == 422
        await create_type(other_client, "company")
        foreign = await create_element(other_client, "company", title="Foreign")
        response = await client.post("/entity-types/contact/elements", json={"values": {"company": foreign["id"]}})
        assert response.status_code == 422
        assert "not found" in response.json()["errors"][0]["message"]


class TestUpdateElement:
    async def test_merges_values_and_bumps_version(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", values={"budget": 10, "industry": "it"})
        response = await client.patch(f"/elements/{element['id']}", json={"values": {"budget": 20, "industry": None}})
        assert response.status_code == 200
        body = response.json()
        assert body["values"] == {"budget": 20}
        assert body["version"] == 2

    async def test_stale_version_is_412(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", values={"budget": 10})
        ok = await client.patch(f"/elements/{element['id']}", json={"title": "a"}, headers={"If-Match": "1"})
        assert ok.status_code == 200
        stale = await client.patch(f"/elements/{element['id']}", json={"title": "b"}, headers={"If-Match": "1"})
        assert stale.status_code == 412
        stale_body = await client.patch(f"/elements/{element['id']}", json={"title": "b", "version": 1})
        assert stale_body.status_code == 412
        current = (await client.get(f"/elements/{element['id']}")).json()
        assert current["title"] == "a"

    async def test_clearing_a_required_value_is_refused(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_field(client, "deal", "name", "string", required=True)
        element = await create_element(client, "deal", values={"name": "x"})
        response = await client.patch(f"/elements/{element['id']}", json={"values": {"name": None}})
        assert response.status_code == 422
        assert response.json()["errors"] == [{"field": "values.name", "message": "is required"}]


class TestMoveElement:
    async def test_move_by_code_records_history(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="A")
        moved = await client.post(f"/elements/{element['id']}/move", json={"stage_code": "IN_PROGRESS"})
        assert moved.status_code == 200
        assert moved.json()["stage_code"] == "IN_PROGRESS"
        assert moved.json()["version"] == 2
        history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
        assert [entry["kind"] for entry in history] == ["created", "moved"]
        assert history[1]["data"]["from_stage_code"] == "NEW"
        assert history[1]["data"]["to_stage_code"] == "IN_PROGRESS"

    async def test_move_to_stage_of_another_pipeline_without_pipeline_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal", settings={"pipelines_enabled": True})
        second = (await client.post("/entity-types/deal/pipelines", json={"title": "Partners"})).json()
        element = await create_element(client, "deal")
        response = await client.post(f"/elements/{element['id']}/move", json={"stage_id": second["stages"][0]["id"]})
        assert response.status_code == 422
        tunnel = await client.post(
            f"/elements/{element['id']}/move",
            json={"stage_id": second["stages"][0]["id"], "pipeline_id": second["id"]},
        )
        assert tunnel.status_code == 200
        assert tunnel.json()["pipeline_id"] == second["id"]

    async def test_stale_move_is_412(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead")
        response = await client.post(f"/elements/{element['id']}/move", json={"stage_code": "SUCCESS", "version": 7})
        assert response.status_code == 412


class TestDeleteAndRestore:
    async def test_recycle_bin(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="gone")
        assert (await client.delete(f"/elements/{element['id']}")).status_code == 204
        assert (await client.get("/entity-types/lead/elements")).json()["items"] == []
        binned = (await client.get("/entity-types/lead/elements", params={"deleted": "true"})).json()["items"]
        assert [e["id"] for e in binned] == [element["id"]]
        restored = await client.post(f"/elements/{element['id']}/restore")
        assert restored.status_code == 200
        assert restored.json()["deleted_at"] is None
        assert len((await client.get("/entity-types/lead/elements")).json()["items"]) == 1

    async def test_without_recycle_bin_deletes(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "note", settings={"recycle_bin_enabled": False})
        element = await create_element(client, "note")
        assert (await client.delete(f"/elements/{element['id']}")).status_code == 204
        assert (await client.get(f"/elements/{element['id']}")).status_code == 404


class TestTenantIsolation:
    async def test_foreign_element_is_404(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead")
        assert (await other_client.get(f"/elements/{element['id']}")).status_code == 404
        assert (await other_client.patch(f"/elements/{element['id']}", json={"title": "x"})).status_code == 404
        assert (
            await other_client.post(f"/elements/{element['id']}/move", json={"stage_code": "NEW"})
        ).status_code == 404
        assert (await other_client.delete(f"/elements/{element['id']}")).status_code == 404
        assert (await other_client.get("/entity-types/lead/elements")).status_code == 404

    async def test_viewer_cannot_write(self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient) -> None:
        await lead_type(client)
        element = await create_element(client, "lead")
        assert (await viewer_client.get(f"/elements/{element['id']}")).status_code == 200
        response = await viewer_client.post("/entity-types/lead/elements", json={})
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert (await viewer_client.patch(f"/elements/{element['id']}", json={"title": "x"})).status_code == 403


async def _seed_for_listing(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    await lead_type(client)
    items = [
        {
            "op": "create",
            "data": {
                "title": f"lead {i}",
                "values": {
                    "industry": ["it", "retail", "bank"][i % 3],
                    "budget": (i * 37) % 100,
                    "company_size": (i * 7) % 20,
                },
            },
        }
        for i in range(60)
    ]
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


class TestListElements:
    async def test_filter_on_two_fields_sorted_on_a_third_with_cursor(
        self, client: httpx.AsyncClient, count_queries: Any
    ) -> None:
        created = await _seed_for_listing(client)
        expected = sorted(
            (e for e in created if e["values"]["industry"] == "it" and e["values"]["budget"] >= 20),
            key=lambda e: (-e["values"]["company_size"], e["id"]),
        )
        assert len(expected) > 10
        flt = {"and": [{"field": "industry", "op": "eq", "value": "it"}, {"field": "budget", "op": "gte", "value": 20}]}
        seen: list[dict[str, Any]] = []
        cursor = None
        counter = count_queries()
        pages = 0
        while True:
            params: dict[str, str | int] = {
                "filter": json.dumps(flt),
                "sort": "-company_size",
                "limit": 4,
                "with_total": "true",
            }
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/entity-types/lead/elements", params=params)).json()
            assert body["total"] == len(expected)
            seen.extend(body["items"])
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                break
        # Ties on company_size are broken by id in the sort's direction.
        got = [(e["values"]["company_size"], e["id"]) for e in seen]
        assert got == sorted(got, reverse=True)
        assert [e["id"] for e in seen] == [
            e["id"] for e in sorted(expected, key=lambda e: (e["values"]["company_size"], e["id"]), reverse=True)
        ]
        # A constant number of statements per page, whatever the page size: no query per element.
        assert counter.count <= pages * 8

    async def test_search_endpoint_and_system_sort(self, client: httpx.AsyncClient) -> None:
        created = await _seed_for_listing(client)
        body = (
            await client.post(
                "/entity-types/lead/elements/search",
                json={
                    "filter": {"field": "title", "op": "icontains", "value": "LEAD 1"},
                    "sort": "title",
                    "limit": 500,
                },
            )
        ).json()
        titles = [e["title"] for e in body["items"]]
        assert titles == sorted(e["title"] for e in created if e["title"].startswith("lead 1"))

    async def test_unknown_field_and_wrong_op_are_422_naming_them(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.post(
            "/entity-types/lead/elements/search",
            json={
                "filter": {
                    "or": [
                        {"field": "colour", "op": "eq", "value": "red"},
                        {"field": "is_b2b", "op": "gt", "value": True},
                    ]
                }
            },
        )
        assert response.status_code == 422
        errors = response.json()["errors"]
        assert errors[0]["field"] == "filter.or[0].field"
        assert "colour" in errors[0]["message"]
        assert errors[1]["field"] == "filter.or[1].op"
        assert "is_b2b" in errors[1]["message"]
        bad_sort = await client.get("/entity-types/lead/elements", params={"sort": "-colour"})
        assert bad_sort.status_code == 422
        bad_json = await client.get("/entity-types/lead/elements", params={"filter": "{nope"})
        assert bad_json.status_code == 422
        bad_cursor = await client.get("/entity-types/lead/elements", params={"cursor": "garbage"})
        assert bad_cursor.status_code == 422


class TestBatch:
    async def test_all_or_nothing_with_per_item_errors(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        existing = await create_element(client, "lead", values={"budget": 1})
        response = await client.post(
            "/entity-types/lead/elements/batch",
            json={
                "items": [
                    {"op": "create", "data": {"title": "ok"}},
                    {"op": "create", "data": {"values": {"budget": -5}}},
                    {"op": "update", "id": existing["id"], "data": {"values": {"industry": "nope"}}},
                    {"op": "update", "data": {}},
                ]
            },
        )
        assert response.status_code == 422
        fields = sorted(e["field"] for e in response.json()["errors"])
        assert fields == ["items[1].values.budget", "items[2].values.industry", "items[3].id"]
        assert len((await client.get("/entity-types/lead/elements")).json()["items"]) == 1

    async def test_creates_and_updates(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        existing = await create_element(client, "lead", values={"budget": 1})
        response = await client.post(
            "/entity-types/lead/elements/batch",
            json={
                "items": [
                    {"op": "update", "id": existing["id"], "data": {"values": {"budget": 2}, "version": 1}},
                    {"op": "create", "data": {"title": "new"}},
                ]
            },
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert items[0]["values"]["budget"] == 2
        assert items[0]["version"] == 2
        assert items[1]["title"] == "new"

    async def test_more_than_1000_is_refused(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.post(
            "/entity-types/lead/elements/batch", json={"items": [{"op": "create", "data": {}}] * 1001}
        )
        assert response.status_code == 422


class TestIdempotency:
    async def test_replay_returns_first_answer(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        headers = {"Idempotency-Key": "create-acme-1"}
        first = await client.post("/entity-types/lead/elements", json={"title": "ACME"}, headers=headers)
        second = await client.post("/entity-types/lead/elements", json={"title": "ACME"}, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        assert second.headers["idempotent-replayed"] == "true"
        assert len((await client.get("/entity-types/lead/elements")).json()["items"]) == 1
        reused = await client.post("/entity-types/lead/elements", json={"title": "Other"}, headers=headers)
        assert reused.status_code == 422


class TestBoard:
    async def test_counts_sums_and_first_elements_per_stage(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        pipeline = await default_pipeline(client, "lead")
        for i in range(5):
            await create_element(client, "lead", title=f"n{i}", amount=10 * (i + 1))
        moved = await create_element(client, "lead", title="won", amount=1000, values={"industry": "it"})
        await client.post(f"/elements/{moved['id']}/move", json={"stage_code": "SUCCESS"})
        board = (await client.get(f"/pipelines/{pipeline['id']}/board", params={"per_stage": 3})).json()
        columns = {c["stage"]["code"]: c for c in board["stages"]}
        assert [c["stage"]["code"] for c in board["stages"]] == ["NEW", "IN_PROGRESS", "SUCCESS", "FAIL"]
        assert columns["NEW"]["count"] == 5
        assert columns["NEW"]["amount_sum"] == 150
        assert [e["title"] for e in columns["NEW"]["elements"]] == ["n4", "n3", "n2"]
        assert columns["SUCCESS"]["count"] == 1
        assert columns["SUCCESS"]["elements"][0]["title"] == "won"
        filtered = (
            await client.get(
                f"/pipelines/{pipeline['id']}/board",
                params={"filter": json.dumps({"field": "industry", "op": "eq", "value": "it"})},
            )
        ).json()
        assert [c["count"] for c in filtered["stages"]] == [0, 0, 1, 0]
