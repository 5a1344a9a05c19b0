import httpx
import pytest

from tests.factories import create_element, create_field, create_type, lead_type


class TestEntityTypes:
    async def test_blank_preset_gets_the_default_pipeline(self, client: httpx.AsyncClient) -> None:
        created = await create_type(client, "dishwasher")
        assert created["code"] == "dishwasher"
        pipelines = (await client.get("/entity-types/dishwasher/pipelines")).json()["items"]
        assert len(pipelines) == 1
        assert pipelines[0]["is_default"] is True
        stages = [(s["code"], s["semantic"]) for s in pipelines[0]["stages"]]
        assert stages == [("NEW", "process"), ("IN_PROGRESS", "process"), ("SUCCESS", "success"), ("FAIL", "failure")]

    async def test_list_preset_has_no_stages(self, client: httpx.AsyncClient) -> None:
        created = await create_type(client, "contact_list", preset="list")
        assert created["settings"]["stages_enabled"] is False
        element = await create_element(client, "contact_list", title="x")
        assert element["stage_id"] is None

    async def test_full_preset_turns_every_flag_on(self, client: httpx.AsyncClient) -> None:
        created = await create_type(client, "everything", preset="full")
        assert all(created["settings"].values())

    async def test_found_by_id_or_code(self, client: httpx.AsyncClient) -> None:
        created = await create_type(client, "deal")
        by_id = await client.get(f"/entity-types/{created['id']}")
        by_code = await client.get("/entity-types/deal")
        assert by_id.json() == by_code.json()

    @pytest.mark.parametrize("code", ["Deal", "1deal", "d", "deal-x", "x" * 64])
    async def test_bad_code_is_422(self, client: httpx.AsyncClient, code: str) -> None:
        response = await client.post("/entity-types", json={"code": code, "title": "Deal"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "code"

    async def test_duplicate_code_is_409(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await client.post("/entity-types", json={"code": "deal", "title": "Again"})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"

    async def test_same_code_in_another_workspace_is_fine(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        await create_type(other_client, "deal")

    async def test_patch_title_and_settings(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await client.patch(
            "/entity-types/deal", json={"title": "Deals", "settings": {"recycle_bin_enabled": True}}
        )
        assert response.status_code == 200, response.text
        assert response.json()["title"] == "Deals"
        assert response.json()["settings"]["recycle_bin_enabled"] is True

    async def test_delete_with_elements_needs_force(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_element(client, "deal", title="x")
        refused = await client.delete("/entity-types/deal")
        assert refused.status_code == 409
        assert (await client.get("/entity-types/deal")).status_code == 200
        forced = await client.delete("/entity-types/deal", params={"force": "true"})
        assert forced.status_code == 204
        assert (await client.get("/entity-types/deal")).status_code == 404

    async def test_foreign_type_is_404(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        created = await create_type(client, "deal")
        assert (await other_client.get(f"/entity-types/{created['id']}")).status_code == 404
        assert (await other_client.delete(f"/entity-types/{created['id']}")).status_code == 404

    async def test_viewer_reads_but_cannot_write(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        assert (await viewer_client.get("/entity-types/deal")).status_code == 200
        response = await viewer_client.post("/entity-types", json={"code": "other", "title": "Other"})
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"


class TestFields:
    async def test_every_field_type_can_be_created(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "company")
        await create_type(client, "deal")
        plain = ["string", "text", "integer", "decimal", "money", "boolean", "date", "datetime"]
        plain += ["email", "phone", "url", "user"]
        for field_type in plain:
            await create_field(client, "deal", f"f_{field_type}", field_type)
        await create_field(client, "deal", "f_enum", "enum", options=[{"value": "a", "label": "A"}])
        await create_field(client, "deal", "f_reference", "reference", target_type="company")
        listed = (await client.get("/entity-types/deal/fields")).json()["items"]
        assert {f["type"] for f in listed} == {*plain, "enum", "reference"}

    async def test_enum_without_options_and_reference_without_target_are_422(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        enum = await client.post("/entity-types/deal/fields", json={"code": "kind", "type": "enum"})
        assert enum.status_code == 422
        assert enum.json()["errors"][0]["field"] == "options"
        ref = await client.post("/entity-types/deal/fields", json={"code": "company", "type": "reference"})
        assert ref.status_code == 422
        assert ref.json()["errors"][0]["field"] == "target_type"

    async def test_unknown_type_and_bad_settings_are_reported_together(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await client.post(
            "/entity-types/deal/fields",
            json={"code": "size", "type": "integer", "min": 10, "max": 1, "pattern": "(", "max_length": 3},
        )
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert {"min", "pattern", "max_length"} <= fields
        assert (await client.post("/entity-types/deal/fields", json={"code": "x1", "type": "blob"})).status_code == 422

    async def test_duplicate_and_reserved_codes(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_field(client, "deal", "size", "integer")
        duplicate = await client.post("/entity-types/deal/fields", json={"code": "size", "type": "integer"})
        assert duplicate.status_code == 409
        reserved = await client.post("/entity-types/deal/fields", json={"code": "title", "type": "string"})
        assert reserved.status_code == 422

    async def test_change_type_refused_when_values_exist(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_field(client, "deal", "size", "integer")
        unused = await client.patch("/entity-types/deal/fields/size", json={"type": "decimal"})
        assert unused.status_code == 200, unused.text
        await create_element(client, "deal", values={"size": 3})
        refused = await client.patch("/entity-types/deal/fields/size", json={"type": "string"})
        assert refused.status_code == 409
        assert (await client.get("/entity-types/deal/fields/size")).json()["type"] == "decimal"

    async def test_patch_options_and_label(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.patch(
            "/entity-types/lead/fields/industry",
            json={"label": "Sector", "options": [{"value": "it", "label": "IT"}, {"value": "farm", "label": "Farm"}]},
        )
        assert response.status_code == 200, response.text
        assert response.json()["label"] == "Sector"
        assert [o["value"] for o in response.json()["options"]] == ["it", "farm"]
        await create_element(client, "lead", values={"industry": "farm"})

    async def test_delete_field_removes_it_from_elements(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        await create_field(client, "deal", "size", "integer")
        element = await create_element(client, "deal", values={"size": 3})
        assert (await client.delete("/entity-types/deal/fields/size")).status_code == 204
        assert (await client.get(f"/elements/{element['id']}")).json()["values"] == {}
        assert (await client.get("/entity-types/deal/fields/size")).status_code == 404

    async def test_viewer_cannot_add_fields(self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await viewer_client.post("/entity-types/deal/fields", json={"code": "size", "type": "integer"})
        assert response.status_code == 403
