"""Permissions compiled into element reads and checked on writes, through REST and GraphQL, for an API key that acts
with a custom role (`own` = the elements the key created). People with `own` and `department` scopes are in
test_people_scopes.py."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from app.access.schemas import RoleCreate
from app.access.service import create_role
from app.auth.actor import Actor
from app.auth.models import Role
from app.db import unit_of_work
from app.readmodel import compiler
from tests.conftest import Tenant, make_client
from tests.factories import create_element, create_field, create_type, created, default_pipeline
from tests.graphql.conftest import http_client


async def make_role(app: FastAPI, tenant: Tenant, **body: Any) -> dict[str, Any]:
    async with unit_of_work(app.state.sessionmaker) as session:
        role = await create_role(session, Actor(tenant.workspace_id, Role.admin), RoleCreate.model_validate(body))
    return role.model_dump(mode="json", by_alias=True)


async def key_with_role(client: httpx.AsyncClient, role: str) -> str:
    return str(created(await client.post("/api-keys", json={"name": role, "role": role}))["api_key"])


@pytest.fixture
async def deals(client: httpx.AsyncClient) -> dict[str, Any]:
    """A `deal` type with a public and a secret field; stages new → work → won."""
    await create_type(client, "deal")
    await create_field(client, "deal", "budget", "decimal")
    await create_field(client, "deal", "margin", "decimal")
    pipeline = await default_pipeline(client, "deal")
    return {"pipeline": pipeline, "stages": {s["code"]: s for s in pipeline["stages"]}}


@pytest.fixture
async def own_client(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, deals: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    stages = deals["stages"]
    won = next(code for code, s in stages.items() if s["semantic"] == "success")
    await make_role(
        app,
        tenant,
        name="own deals",
        grants=[
            {"entity_type": "deal", "read": "own", "add": "all", "update": "own", "delete": "none", "export": "own"}
        ],
        stage_rules=[{"stage_id": stages[won]["id"], "move_into": False}],
        field_rules=[{"entity_type": "deal", "field": "margin", "access": "hidden"}],
    )
    async with make_client(app, await key_with_role(client, "own deals")) as http:
        yield http


async def seed(client: httpx.AsyncClient, own_client: httpx.AsyncClient) -> tuple[list[str], list[str]]:
    """Three deals of the restricted key's own, five of the admin's; every one has a margin."""
    mine = [
        (await create_element(own_client, "deal", title=f"mine {i}", values={"budget": 100 + i}))["id"]
        for i in range(3)
    ]
    theirs = [
        (await create_element(client, "deal", title=f"theirs {i}", values={"budget": 200 + i, "margin": 9}))["id"]
        for i in range(5)
    ]
    return mine, theirs


class TestOwnScope:
    async def test_lists_pages_counts_and_searches_only_own(
        self, client: httpx.AsyncClient, own_client: httpx.AsyncClient
    ) -> None:
        mine, _ = await seed(client, own_client)
        first = (await own_client.get("/entity-types/deal/elements", params={"limit": 2, "with_total": True})).json()
        assert first["total"] == 3
        assert len(first["items"]) == 2
        assert first["next_cursor"]
        rest = (
            await own_client.get("/entity-types/deal/elements", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        assert rest["next_cursor"] is None
        assert sorted(e["id"] for e in first["items"] + rest["items"]) == sorted(mine)
        search = await own_client.post(
            "/entity-types/deal/elements/search",
            json={"filter": {"field": "budget", "op": "gte", "value": 0}, "with_total": True},
        )
        assert search.status_code == 200, search.text
        assert {e["id"] for e in search.json()["items"]} == set(mine)
        assert search.json()["total"] == 3
        admin = (await client.get("/entity-types/deal/elements", params={"with_total": True})).json()
        assert admin["total"] == 8

    @pytest.mark.parametrize("few_at_most", [5000, 1])
    async def test_a_person_with_many_elements_gets_the_same_pages(
        self,
        client: httpx.AsyncClient,
        own_client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        few_at_most: int,
    ) -> None:
        """Pages of one's own elements start from one's ids (few of them) or from the sort's index (many): the
        threshold lowered to 1 takes the second way, and both give the same pages, in order, cursors and all."""
        monkeypatch.setattr(compiler, "OWNED_IDS_AT_MOST", few_at_most)
        built: list[str] = []
        owned_page = compiler.owned_page
        monkeypatch.setattr(compiler, "owned_page", lambda *args: built.append(owned_page(*args)) or built[-1])
        mine = [
            (await create_element(own_client, "deal", title=f"mine {i}", values={"budget": i % 4}))["id"]
            for i in range(7)
        ]
        for i in range(6):
            await create_element(client, "deal", title=f"theirs {i}", values={"budget": i % 4})
        seen: list[dict[str, Any]] = []
        body: dict[str, Any] = {"filter": {"field": "budget", "op": "gte", "value": 1}, "sort": "-budget", "limit": 2}
        while True:
            page = await own_client.post("/entity-types/deal/elements/search", json=body)
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            if not page.json()["next_cursor"]:
                break
            body["cursor"] = page.json()["next_cursor"]
        assert {e["id"] for e in seen} <= set(mine)
        assert len(seen) == len({e["id"] for e in seen}) == 5  # budgets 1, 2, 3, 1, 2 of the seven
        budgets = [e["values"]["budget"] for e in seen]
        assert budgets == sorted(budgets, reverse=True)
        assert built  # the pages went through the two-way statement
        assert all(f"count(*) FROM owned) <= {few_at_most}" in sql for sql in built)

    async def test_board_counts_and_sums_only_own(
        self, client: httpx.AsyncClient, own_client: httpx.AsyncClient, deals: dict[str, Any]
    ) -> None:
        mine, _ = await seed(client, own_client)
        board = await own_client.get(f"/pipelines/{deals['pipeline']['id']}/board")
        assert board.status_code == 200, board.text
        shown = [e["id"] for stage in board.json()["stages"] for e in stage["elements"]]
        assert sorted(shown) == sorted(mine)
        assert sum(stage["count"] for stage in board.json()["stages"]) == 3
        full = (await client.get(f"/pipelines/{deals['pipeline']['id']}/board")).json()
        assert sum(stage["count"] for stage in full["stages"]) == 8

    async def test_another_persons_element_is_not_found_for_every_action(
        self, client: httpx.AsyncClient, own_client: httpx.AsyncClient
    ) -> None:
        _, theirs = await seed(client, own_client)
        target = theirs[0]
        assert (await own_client.get(f"/elements/{target}")).status_code == 404
        patch = await own_client.patch(f"/elements/{target}", json={"title": "taken"})
        assert patch.status_code == 404
        assert (await own_client.get(f"/elements/{target}/history")).status_code == 404
        assert (await client.get(f"/elements/{target}")).json()["title"] == "theirs 0"

    async def test_delete_needs_its_own_scope(self, client: httpx.AsyncClient, own_client: httpx.AsyncClient) -> None:
        mine, _ = await seed(client, own_client)
        refused = await own_client.delete(f"/elements/{mine[0]}")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["errors"] == [{"field": "permission", "message": "deal.delete"}]
        assert (await own_client.get(f"/elements/{mine[0]}")).status_code == 200

    async def test_a_stage_the_role_may_not_move_into_is_403_and_the_element_stays(
        self, client: httpx.AsyncClient, own_client: httpx.AsyncClient, deals: dict[str, Any]
    ) -> None:
        mine, _ = await seed(client, own_client)
        won = next(s for s in deals["stages"].values() if s["semantic"] == "success")
        before = (await own_client.get(f"/elements/{mine[0]}")).json()
        refused = await own_client.post(f"/elements/{mine[0]}/move", json={"stage_id": won["id"]})
        assert refused.status_code == 403, refused.text
        assert "move_into" in refused.json()["errors"][0]["message"]
        after = (await own_client.get(f"/elements/{mine[0]}")).json()
        assert after["stage_id"] == before["stage_id"]
        assert after["version"] == before["version"]
        other = next(
            s for s in deals["stages"].values() if s["semantic"] == "process" and s["id"] != before["stage_id"]
        )
        assert (await own_client.post(f"/elements/{mine[0]}/move", json={"stage_id": other["id"]})).status_code == 200


class TestHiddenFields:
    async def test_absent_from_list_get_board_and_writes(
        self, client: httpx.AsyncClient, own_client: httpx.AsyncClient, deals: dict[str, Any]
    ) -> None:
        element = await create_element(own_client, "deal", title="mine", values={"budget": 5})
        await client.patch(f"/elements/{element['id']}", json={"values": {"margin": 7}})
        assert (await client.get(f"/elements/{element['id']}")).json()["values"]["margin"] == 7
        got = (await own_client.get(f"/elements/{element['id']}")).json()
        assert "margin" not in got["values"]
        assert got["values"]["budget"] == 5
        listed = (await own_client.get("/entity-types/deal/elements")).json()["items"]
        assert all("margin" not in e["values"] for e in listed)
        board = (await own_client.get(f"/pipelines/{deals['pipeline']['id']}/board")).json()
        assert all("margin" not in e["values"] for stage in board["stages"] for e in stage["elements"])
        patched = await own_client.patch(f"/elements/{element['id']}", json={"title": "renamed"})
        assert patched.status_code == 200
        assert "margin" not in patched.json()["values"]

    async def test_cannot_be_filtered_sorted_or_written(self, own_client: httpx.AsyncClient) -> None:
        element = await create_element(own_client, "deal", title="mine")
        search = await own_client.post(
            "/entity-types/deal/elements/search", json={"filter": {"field": "margin", "op": "gt", "value": 1}}
        )
        assert search.status_code == 422
        assert (await own_client.get("/entity-types/deal/elements", params={"sort": "-margin"})).status_code == 422
        write = await own_client.patch(f"/elements/{element['id']}", json={"values": {"margin": 1}})
        assert write.status_code == 403


class TestExport:
    async def test_exports_only_what_the_export_scope_covers_without_hidden_fields(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, own_client: httpx.AsyncClient
    ) -> None:
        mine, _ = await seed(client, own_client)
        everything = await client.get("/entity-types/deal/elements/export")
        assert everything.status_code == 200
        assert everything.headers["content-type"].startswith("application/x-ndjson")
        assert len(everything.text.splitlines()) == 8
        assert '"margin"' in everything.text
        own = await own_client.get("/entity-types/deal/elements/export")
        lines = [orjson.loads(line) for line in own.text.splitlines()]
        assert sorted(e["id"] for e in lines) == sorted(mine)
        assert all("margin" not in e["values"] for e in lines)
        as_csv = await own_client.get("/entity-types/deal/elements/export", params={"format": "csv"})
        header, *rows = as_csv.text.splitlines()
        assert "budget" in header.split(",")
        assert "margin" not in header
        assert len(rows) == 3
        await make_role(app, tenant, name="readers", grants=[{"entity_type": "deal", "read": "all"}])
        async with make_client(app, await key_with_role(client, "readers")) as reader:
            refused = await reader.get("/entity-types/deal/elements/export")
        assert refused.status_code == 403
        assert refused.json()["errors"] == [{"field": "permission", "message": "deal.export"}]

    async def test_a_bad_filter_is_a_4xx_before_the_stream_starts(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        bad = await client.get("/entity-types/deal/elements/export", params={"filter": '{"field": "nope", "op": "eq"}'})
        assert bad.status_code in (400, 422)


class TestGraphQL:
    async def test_connection_and_element_follow_the_scope(
        self, app: FastAPI, client: httpx.AsyncClient, own_client: httpx.AsyncClient
    ) -> None:
        mine, theirs = await seed(client, own_client)
        key = own_client.headers["authorization"].removeprefix("Bearer ")
        query = """query($cursor: String) {
            elements(type: "deal", first: 2, after: $cursor) {
                totalCount pageInfo { hasNextPage endCursor } edges { node { id values } } } }"""
        async with http_client(app, key) as session:
            first = (await session.execute(GraphQLRequest(query)))["elements"]
            assert first["totalCount"] == 3
            assert first["pageInfo"]["hasNextPage"]
            rest = (
                await session.execute(GraphQLRequest(query, variable_values={"cursor": first["pageInfo"]["endCursor"]}))
            )["elements"]
            ids = [edge["node"]["id"] for edge in first["edges"] + rest["edges"]]
            assert sorted(ids) == sorted(mine)
            with pytest.raises(TransportQueryError) as refused:
                await session.execute(
                    GraphQLRequest("query($id: UUID!) { element(id: $id) { id } }", variable_values={"id": theirs[0]})
                )
            assert refused.value.errors
            assert refused.value.errors[0]["extensions"]["status"] == 404


class TestPipelines:
    async def test_a_pipeline_grant_overrides_the_types_and_new_pipelines_follow_the_type_setting(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal", settings={"pipelines_enabled": True, "open_new_pipelines": False})
        first = await default_pipeline(client, "deal")
        second = created(await client.post("/entity-types/deal/pipelines", json={"title": "Second"}))
        await make_role(
            app,
            tenant,
            name="first only",
            grants=[
                {"entity_type": "deal", "read": "all"},
                {"entity_type": "deal", "pipeline_id": second["id"], "read": "none"},
            ],
        )
        in_first = await create_element(client, "deal", title="first", pipeline_id=first["id"])
        in_second = await create_element(client, "deal", title="second", pipeline_id=second["id"])
        # A pipeline made after the role, on a type that keeps new pipelines closed: the role gets none on it.
        third = created(await client.post("/entity-types/deal/pipelines", json={"title": "Third"}))
        in_third = await create_element(client, "deal", title="third", pipeline_id=third["id"])
        async with make_client(app, await key_with_role(client, "first only")) as reader:
            listed = (await reader.get("/entity-types/deal/elements", params={"with_total": True})).json()
            assert [e["id"] for e in listed["items"]] == [in_first["id"]]
            assert listed["total"] == 1
            assert (await reader.get(f"/elements/{in_second['id']}")).status_code == 404
            assert (await reader.get(f"/elements/{in_third['id']}")).status_code == 404
            board = (await reader.get(f"/pipelines/{third['id']}/board")).json()
            assert sum(stage["count"] for stage in board["stages"]) == 0
        await client.patch("/entity-types/deal", json={"settings": {"open_new_pipelines": True}})
        fourth = created(await client.post("/entity-types/deal/pipelines", json={"title": "Fourth"}))
        in_fourth = await create_element(client, "deal", title="fourth", pipeline_id=fourth["id"])
        async with make_client(app, await key_with_role(client, "first only")) as reader:
            assert (await reader.get(f"/elements/{in_fourth['id']}")).status_code == 200

    async def test_another_workspaces_elements_are_not_found(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, deals: dict[str, Any]
    ) -> None:
        element = await create_element(client, "deal", title="ours")
        assert (await other_client.get(f"/elements/{element['id']}")).status_code == 404
        assert (await other_client.patch(f"/elements/{element['id']}", json={"title": "x"})).status_code == 404
        assert (await other_client.get(f"/pipelines/{deals['pipeline']['id']}/board")).status_code == 404


class TestImport:
    async def test_the_import_scope_decides_not_add(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, deals: dict[str, Any]
    ) -> None:
        await make_role(app, tenant, name="importer", grants=[{"entity_type": "deal", "read": "own", "import": "all"}])
        await make_role(app, tenant, name="adder", grants=[{"entity_type": "deal", "read": "own", "add": "all"}])
        csv = b"title,budget\nOne,1\nTwo,2\n"
        async with make_client(app, await key_with_role(client, "adder")) as adder:
            refused = await adder.post("/entity-types/deal/import", files={"file": ("d.csv", csv, "text/csv")})
            assert refused.status_code == 403
            assert refused.json()["errors"] == [{"field": "permission", "message": "deal.import"}]
        async with make_client(app, await key_with_role(client, "importer")) as importer:
            started = await importer.post("/entity-types/deal/import", files={"file": ("d.csv", csv, "text/csv")})
            assert started.status_code == 202, started.text
            job = started.json()
            for _ in range(100):
                job = (await importer.get(f"/entity-types/deal/imports/{job['id']}")).json()
                if job["status"] in ("done", "failed"):
                    break
                await asyncio.sleep(0.05)
            assert (job["status"], job["imported"]) == ("done", 2), job
            listed = (await importer.get("/entity-types/deal/elements")).json()["items"]
            assert sorted(e["title"] for e in listed) == ["One", "Two"]
