"""Card layouts through REST: resolution per pipeline and role, new and deleted fields, validation, permissions and
tenant isolation."""

import httpx
from fastapi import FastAPI

from tests.factories import create_field, create_type, created
from tests.layouts.helpers import client_with_role, layout, problem, role, sections, washers

SYSTEM_HEAD = ["title", "pipeline_id", "stage_id", "assigned_to", "amount", "currency", "score"]
SYSTEM_TAIL = ["created_at", "updated_at", "moved_at"]


class TestResolution:
    async def test_without_layouts_the_card_is_generated_with_every_field_in_the_types_order(
        self, client: httpx.AsyncClient
    ) -> None:
        w = await washers(client)
        card = (await client.get("/entity-types/dishwasher/layouts/effective")).json()
        assert (card["layout_id"], card["layout_name"]) == (None, "Generated")
        assert sections(card) == [("main", [*SYSTEM_HEAD, "capacity", "energy_class", "notes", *SYSTEM_TAIL])]
        capacity = card["sections"][0]["fields"][7]
        assert capacity == {"code": "capacity", "title": "Capacity", "type": "integer", "system": False}
        assert card["sections"][0]["fields"][0] == {"code": "title", "title": "Title", "type": "string", "system": True}
        # A type without pipelines, source or dates turned on shows none of them.
        await create_type(client, "memo", preset="list")
        memo = (await client.get("/entity-types/memo/layouts/effective")).json()
        assert sections(memo) == [("main", ["title", "assigned_to", "amount", "currency", "score", *SYSTEM_TAIL])]
        assert (await client.get(f"/elements/{w.in_a['id']}/card")).json()["layout_id"] is None

    async def test_a_layout_per_pipeline_changes_the_cards_sections(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        everywhere = await layout(
            client,
            name="Everywhere",
            sections=[{"code": "main", "title": "Main", "fields": ["title", "stage_id", "amount"]}],
            hidden=["pipeline_id", "assigned_to", "currency", "score", *SYSTEM_TAIL, "notes"],
        )
        for_a = await layout(
            client,
            name="Pipeline A",
            pipeline_id=w.pipeline_a,
            sections=[
                {"code": "deal", "title": "Deal", "fields": ["title", "amount", "currency"]},
                {"code": "tech", "title": "Technical", "fields": ["capacity", "energy_class"], "default": True},
            ],
            hidden=["pipeline_id", "stage_id", "assigned_to", "score", *SYSTEM_TAIL],
        )
        card_a = (await client.get(f"/elements/{w.in_a['id']}/card")).json()
        assert (card_a["layout_id"], card_a["pipeline_id"]) == (for_a["id"], w.pipeline_a)
        # Not placed and not hidden: `notes` lands in the default section.
        assert sections(card_a) == [
            ("deal", ["title", "amount", "currency"]),
            ("tech", ["capacity", "energy_class", "notes"]),
        ]
        values = {f["code"]: f["value"] for s in card_a["sections"] for f in s["fields"]}
        assert values == {
            "title": "DW-A",
            "amount": 499.9,
            "currency": None,
            "capacity": 12,
            "energy_class": "A",
            "notes": "quiet",
        }
        card_default = (await client.get(f"/elements/{w.in_default['id']}/card")).json()
        assert card_default["layout_id"] == everywhere["id"]
        assert sections(card_default) == [("main", ["title", "stage_id", "amount", "capacity", "energy_class"])]
        stage = card_default["sections"][0]["fields"][1]
        assert (stage["type"], stage["value"]) == ("stage", w.in_default["stage_id"])
        # The effective layout per pipeline says the same without an element.
        effective = await client.get("/entity-types/dishwasher/layouts/effective", params={"pipeline_id": w.pipeline_a})
        assert sections(effective.json()) == sections(card_a)
        effective = await client.get(
            "/entity-types/dishwasher/layouts/effective", params={"pipeline_id": w.pipeline_default}
        )
        assert effective.json()["layout_id"] == everywhere["id"]
        # A layout is presentation only: the element keeps every value.
        element = (await client.get(f"/elements/{w.in_default['id']}")).json()
        assert element["values"] == {"capacity": 9}
        assert (await client.get(f"/elements/{w.in_a['id']}")).json()["values"]["notes"] == "quiet"

    async def test_a_field_added_after_the_layout_lands_in_the_default_section(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        first_is_default = await layout(
            client, sections=[{"code": "a", "title": "A", "fields": ["title"]}, {"code": "b", "title": "B"}]
        )
        await layout(
            client,
            pipeline_id=w.pipeline_a,
            sections=[{"code": "a", "title": "A", "fields": ["title"]}, {"code": "b", "title": "B", "default": True}],
            hidden=[*SYSTEM_HEAD[1:], *SYSTEM_TAIL],
        )
        await create_field(client, "dishwasher", "colour", "string")
        card_a = (await client.get(f"/elements/{w.in_a['id']}/card")).json()
        assert sections(card_a) == [("a", ["title"]), ("b", ["capacity", "energy_class", "notes", "colour"])]
        card = (await client.get(f"/elements/{w.in_default['id']}/card")).json()
        assert card["layout_id"] == first_is_default["id"]
        # Section B holds nothing: it is left out of the card.
        assert sections(card) == [
            ("a", ["title", *SYSTEM_HEAD[1:], "capacity", "energy_class", "notes", "colour", *SYSTEM_TAIL])
        ]
        # The layout itself is as saved.
        saved = (await client.get(f"/entity-types/dishwasher/layouts/{first_is_default['id']}")).json()
        assert sections(saved) == [("a", ["title"]), ("b", [])]

    async def test_a_deleted_field_disappears(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        saved = await layout(
            client,
            sections=[{"code": "main", "title": "Main", "fields": ["title", "notes", "capacity"]}],
            hidden=["energy_class"],
        )
        assert (await client.delete("/entity-types/dishwasher/fields/notes")).status_code == 204
        assert (await client.delete("/entity-types/dishwasher/fields/energy_class")).status_code == 204
        card = (await client.get(f"/elements/{w.in_default['id']}/card")).json()
        assert "notes" not in sections(card)[0][1]
        assert sections(card)[0][1][:2] == ["title", "capacity"]
        read = (await client.get(f"/entity-types/dishwasher/layouts/{saved['id']}")).json()
        assert (sections(read), read["hidden"]) == ([("main", ["title", "capacity"])], [])
        # What a GET answers can be sent back as it is.
        body = {"sections": read["sections"], "hidden": read["hidden"]}
        assert (await client.patch(f"/entity-types/dishwasher/layouts/{saved['id']}", json=body)).status_code == 200

    async def test_a_role_layout_applies_to_who_holds_the_role(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        desk = await role(client, "Desk", grants=[{"entity_type": "dishwasher", "read": "all"}])
        await layout(client, sections=[{"code": "main", "title": "Main", "fields": ["title"]}])
        for_desk = await layout(
            client, role_id=desk["id"], sections=[{"code": "desk", "title": "Desk", "fields": ["capacity", "title"]}]
        )
        desk_in_a = await layout(
            client,
            role_id=desk["id"],
            pipeline_id=w.pipeline_a,
            sections=[{"code": "desk_a", "title": "Desk in A", "fields": ["energy_class"]}],
        )
        async with await client_with_role(app, client, "Desk") as desk_client:
            card = (await desk_client.get(f"/elements/{w.in_default['id']}/card")).json()
            assert (card["layout_id"], sections(card)[0][0]) == (for_desk["id"], "desk")
            assert sections(card)[0][1][:2] == ["capacity", "title"]
            card_a = (await desk_client.get(f"/elements/{w.in_a['id']}/card")).json()
            assert (card_a["layout_id"], sections(card_a)[0][1][0]) == (desk_in_a["id"], "energy_class")
            effective = (await desk_client.get("/entity-types/dishwasher/layouts/effective")).json()
            assert effective["layout_id"] == for_desk["id"]
        # The admin holds another role: the type's layout.
        assert sections((await client.get(f"/elements/{w.in_default['id']}/card")).json())[0][0] == "main"

    async def test_fields_the_roles_hide_are_left_out_of_the_card(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        w = await washers(client)
        await role(
            client,
            "No notes",
            grants=[{"entity_type": "dishwasher", "read": "all"}],
            field_rules=[{"entity_type": "dishwasher", "field": "notes", "access": "hidden"}],
        )
        async with await client_with_role(app, client, "No notes") as reader:
            card = (await reader.get(f"/elements/{w.in_a['id']}/card")).json()
            codes = [f["code"] for s in card["sections"] for f in s["fields"]]
            assert "notes" not in codes
            assert "capacity" in codes
            effective = (await reader.get("/entity-types/dishwasher/layouts/effective")).json()
            assert "notes" not in sections(effective)[0][1]
        admin_card = (await client.get(f"/elements/{w.in_a['id']}/card")).json()
        assert "notes" in sections(admin_card)[0][1]


class TestManaging:
    async def test_list_get_update_delete(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        first = await layout(client, name="  Type card ", sections=[{"code": "main", "title": "Main"}])
        assert first == {
            **first,
            "name": "Type card",
            "entity_type": "dishwasher",
            "pipeline_id": None,
            "role_id": None,
            "sections": [{"code": "main", "title": "Main", "fields": [], "default": False}],
            "hidden": [],
        }
        second = await layout(client, name="A", pipeline_id=w.pipeline_a, sections=[{"code": "a", "title": "A"}])
        listed = (await client.get("/entity-types/dishwasher/layouts")).json()["items"]
        assert [item["id"] for item in listed] == [first["id"], second["id"]]
        # By the type's id too.
        assert (await client.get(f"/entity-types/{w.type['id']}/layouts/{second['id']}")).json()["name"] == "A"
        url = f"/entity-types/dishwasher/layouts/{second['id']}"
        # An explicit null pipeline widens the scope: the type's own layout exists already.
        assert "already" in problem(await client.patch(url, json={"pipeline_id": None}), 409)["detail"]
        changed = await client.patch(url, json={"name": "A2", "hidden": ["notes"]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["hidden"], changed.json()["pipeline_id"]) == (
            "A2",
            ["notes"],
            w.pipeline_a,
        )
        assert (await client.delete(url)).status_code == 204
        problem(await client.get(url), 404)
        problem(await client.delete(url), 404)
        assert [i["id"] for i in (await client.get("/entity-types/dishwasher/layouts")).json()["items"]] == [
            first["id"]
        ]

    async def test_one_layout_per_pipeline_and_role(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        body = {"name": "A", "pipeline_id": w.pipeline_a, "sections": [{"code": "a", "title": "A"}]}
        created(await client.post("/entity-types/dishwasher/layouts", json=body))
        problem(await client.post("/entity-types/dishwasher/layouts", json=body), 409)
        desk = await role(client, "Desk")
        created(await client.post("/entity-types/dishwasher/layouts", json={**body, "role_id": desk["id"]}))

    async def test_a_layout_goes_with_its_pipeline_and_role(self, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        desk = await role(client, "Desk")
        await layout(client, role_id=desk["id"], sections=[{"code": "a", "title": "A"}])
        await layout(client, pipeline_id=w.pipeline_a, sections=[{"code": "a", "title": "A"}])
        assert (await client.delete(f"/roles/{desk['id']}")).status_code == 204
        moved = await client.delete(f"/pipelines/{w.pipeline_a}", params={"move_to": w.pipeline_default})
        assert moved.status_code == 204, moved.text
        assert (await client.get("/entity-types/dishwasher/layouts")).json()["items"] == []


class TestValidation:
    async def test_unknown_and_repeated_fields_are_listed(self, client: httpx.AsyncClient) -> None:
        await washers(client)
        body = {
            "name": "Bad",
            "sections": [
                {"code": "main", "title": "Main", "fields": ["title", "colour", "capacity", "title"]},
                {"code": "main", "title": "Again", "fields": ["capacity", "values"], "default": True},
                {"code": "more", "title": "More", "default": True},
            ],
            "hidden": ["notes", "notes", "size"],
        }
        refused = problem(await client.post("/entity-types/dishwasher/layouts", json=body), 422)
        assert {(e["field"], e["message"]) for e in refused["errors"]} == {
            ("sections[0].fields[1]", "'colour' is no field of entity type 'dishwasher'"),
            ("sections[0].fields[3]", "'title' is placed twice (first at sections[0].fields[0])"),
            ("sections[1].code", "section code 'main' is used twice"),
            ("sections[1].fields[0]", "'capacity' is placed twice (first at sections[0].fields[2])"),
            ("sections[1].fields[1]", "'values' is no field of entity type 'dishwasher'"),
            ("sections[2].default", "only one section can be the default one"),
            ("hidden[1]", "'notes' is placed twice (first at hidden[0])"),
            ("hidden[2]", "'size' is no field of entity type 'dishwasher'"),
        }
        assert (await client.get("/entity-types/dishwasher/layouts")).json()["items"] == []

    async def test_an_update_is_checked_as_a_whole(self, client: httpx.AsyncClient) -> None:
        await washers(client)
        saved = await layout(client, sections=[{"code": "main", "title": "Main", "fields": ["title", "capacity"]}])
        url = f"/entity-types/dishwasher/layouts/{saved['id']}"
        refused = problem(await client.patch(url, json={"hidden": ["capacity"]}), 422)
        assert [e["field"] for e in refused["errors"]] == ["hidden[0]"]
        assert (await client.get(url)).json()["hidden"] == []

    async def test_bounds(self, client: httpx.AsyncClient) -> None:
        await washers(client)
        section = {"code": "main", "title": "Main"}
        for body in (
            {"name": "", "sections": [section]},
            {"name": "x" * 201, "sections": [section]},
            {"name": "No sections", "sections": []},
            {"name": "Many", "sections": [{"code": f"s{i}", "title": "S"} for i in range(51)]},
            {"name": "Bad code", "sections": [{"code": "Main!", "title": "Main"}]},
            {"name": "Long title", "sections": [{"code": "main", "title": "x" * 201}]},
            {"name": "Many fields", "sections": [{**section, "fields": ["title"] * 501}]},
            {"name": "Long code", "sections": [{**section, "fields": ["x" * 64]}]},
            {"name": "Many hidden", "sections": [section], "hidden": ["title"] * 501},
            {"name": "Extra", "sections": [section], "colour": "red"},
            {"name": "Not a list", "sections": [{**section, "fields": "title"}]},
        ):
            problem(await client.post("/entity-types/dishwasher/layouts", json=body), 422)
        assert (await client.get("/entity-types/dishwasher/layouts")).json()["items"] == []

    async def test_pipeline_and_role_must_be_the_types_and_the_workspaces(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await washers(client)
        await create_type(client, "memo", settings={"pipelines_enabled": True})
        memo_pipeline = (await client.get("/entity-types/memo/pipelines")).json()["items"][0]["id"]
        await washers(other_client)
        their_pipeline = (await other_client.get("/entity-types/dishwasher/pipelines")).json()["items"][0]["id"]
        their_role = (await role(other_client, "Theirs"))["id"]
        section = [{"code": "main", "title": "Main"}]
        for pipeline_id in (memo_pipeline, their_pipeline):
            body = {"name": "X", "pipeline_id": pipeline_id, "sections": section}
            refused = problem(await client.post("/entity-types/dishwasher/layouts", json=body), 422)
            assert [e["field"] for e in refused["errors"]] == ["pipeline_id"]
        body = {"name": "X", "role_id": their_role, "sections": section}
        refused = problem(await client.post("/entity-types/dishwasher/layouts", json=body), 422)
        assert [e["field"] for e in refused["errors"]] == ["role_id"]
        saved = await layout(client, sections=section)
        url = f"/entity-types/dishwasher/layouts/{saved['id']}"
        problem(await client.patch(url, json={"role_id": their_role}), 422)
        problem(await client.patch(url, json={"pipeline_id": their_pipeline}), 422)


class TestPermissions:
    async def test_a_viewer_reads_but_cannot_change(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        w = await washers(client)
        saved = await layout(client, sections=[{"code": "main", "title": "Main", "fields": ["title"]}])
        url = f"/entity-types/dishwasher/layouts/{saved['id']}"
        body = {"name": "Mine", "pipeline_id": w.pipeline_a, "sections": [{"code": "a", "title": "A"}]}
        problem(await viewer_client.post("/entity-types/dishwasher/layouts", json=body), 403)
        problem(await viewer_client.patch(url, json={"name": "Mine"}), 403)
        problem(await viewer_client.delete(url), 403)
        assert (await viewer_client.get(url)).json()["name"] == "Card"
        assert len((await viewer_client.get("/entity-types/dishwasher/layouts")).json()["items"]) == 1
        assert (await viewer_client.get(f"/elements/{w.in_a['id']}/card")).json()["layout_id"] == saved["id"]
        assert (await client.get(url)).json()["name"] == "Card"

    async def test_an_editor_changes_layouts(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await washers(client)
        await role(client, "Config", level="editor")
        async with await client_with_role(app, client, "Config") as editor:
            await layout(editor, sections=[{"code": "main", "title": "Main"}])

    async def test_a_role_that_cannot_read_the_type_gets_nothing(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        await create_type(client, "memo")
        saved = await layout(client, sections=[{"code": "main", "title": "Main"}])
        await role(client, "Memos only", grants=[{"entity_type": "memo", "read": "all"}])
        async with await client_with_role(app, client, "Memos only") as outsider:
            for path in (
                "/entity-types/dishwasher/layouts",
                "/entity-types/dishwasher/layouts/effective",
                f"/entity-types/dishwasher/layouts/{saved['id']}",
                f"/elements/{w.in_a['id']}/card",
            ):
                problem(await outsider.get(path), 404)
            problem(await outsider.post("/entity-types/dishwasher/layouts", json={"name": "X", "sections": []}), 422)
            body = {"name": "X", "sections": [{"code": "a", "title": "A"}]}
            problem(await outsider.post("/entity-types/dishwasher/layouts", json=body), 403)
            assert (await outsider.get("/entity-types/memo/layouts")).json()["items"] == []

    async def test_a_role_reading_only_its_own_elements_gets_no_other_card(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        w = await washers(client)
        await role(client, "Own", grants=[{"entity_type": "dishwasher", "read": "own"}])
        async with await client_with_role(app, client, "Own") as own:
            problem(await own.get(f"/elements/{w.in_a['id']}/card"), 404)
            assert (await own.get("/entity-types/dishwasher/layouts/effective")).status_code == 200


class TestTenants:
    async def test_another_workspaces_ids_are_not_found(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        mine = await washers(client)
        theirs = await washers(other_client)
        their_layout = await layout(other_client, sections=[{"code": "main", "title": "Main"}])
        url = f"/entity-types/dishwasher/layouts/{their_layout['id']}"
        problem(await client.get(url), 404)
        problem(await client.patch(url, json={"name": "Taken"}), 404)
        problem(await client.delete(url), 404)
        problem(await client.get(f"/entity-types/{theirs.type['id']}/layouts"), 404)
        problem(await client.get(f"/entity-types/{theirs.type['id']}/layouts/effective"), 404)
        body = {"name": "X", "sections": [{"code": "a", "title": "A"}]}
        problem(await client.post(f"/entity-types/{theirs.type['id']}/layouts", json=body), 404)
        problem(await client.get(f"/elements/{theirs.in_a['id']}/card"), 404)
        effective = await client.get(
            "/entity-types/dishwasher/layouts/effective", params={"pipeline_id": theirs.pipeline_a}
        )
        problem(effective, 404)
        # A layout of another type of mine is not found under this one either.
        await create_type(client, "memo")
        memo_layout = await layout(client, "memo", sections=[{"code": "main", "title": "Main"}])
        problem(await client.get(f"/entity-types/dishwasher/layouts/{memo_layout['id']}"), 404)
        assert (await other_client.get(url)).json()["id"] == their_layout["id"]
        assert (await client.get(f"/elements/{mine.in_a['id']}/card")).status_code == 200
