"""Workplaces: menu sections of entity types, shown to the roles chosen and trimmed to the types each may read."""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from gql import GraphQLRequest

from app.access import service as access_service
from app.access.schemas import GrantIn, RoleCreate
from app.access.snapshot import load_snapshot
from app.auth.actor import Actor, system_actor
from app.db import session_connection, unit_of_work
from app.workplaces import service as workplace_service
from tests.conftest import Tenant, make_client
from tests.factories import create_type, create_user
from tests.graphql.conftest import Run, http_client


async def make_role(app: FastAPI, tenant: Tenant, name: str, readable: list[str]) -> str:
    """A custom role that may read only the types named; returns its id."""
    async with unit_of_work(app.state.sessionmaker) as session:
        role = await access_service.create_role(
            session,
            system_actor(tenant.workspace_id),
            RoleCreate(name=name, grants=[GrantIn(entity_type=code, read="all") for code in readable]),
        )
    return str(role.id)


async def key_for(client: httpx.AsyncClient, role: str) -> str:
    response = await client.post("/api-keys", json={"name": f"key of {role}", "role": role})
    assert response.status_code == 201, response.text
    secret: str = response.json()["api_key"]
    return secret


async def workplace(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/workplaces", json={"name": name, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [w["name"] for w in response.json()["items"]]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


class TestManaging:
    async def test_create_answers_types_with_code_and_title_in_menu_order(self, client: httpx.AsyncClient) -> None:
        lead = await create_type(client, "lead")
        deal = await create_type(client, "deal")
        created = await workplace(
            client, "Sales", description="Front office", sort=2, entity_types=["deal", lead["id"], "deal"]
        )
        assert created["entity_types"] == [
            {"id": deal["id"], "code": "deal", "title": "Deal"},
            {"id": lead["id"], "code": "lead", "title": "Lead"},
        ]
        assert (created["description"], created["sort"], created["role_ids"]) == ("Front office", 2, [])
        assert (await client.get(f"/workplaces/{created['id']}")).json() == created

    async def test_update_delete_and_order(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        first = await workplace(client, "Zeta", sort=1)
        second = await workplace(client, "Alpha", sort=1)
        third = await workplace(client, "Omega", sort=0)
        assert names(await client.get("/workplaces")) == ["Omega", "Alpha", "Zeta"]
        updated = await client.patch(f"/workplaces/{first['id']}", json={"sort": -1, "entity_types": ["lead"]})
        assert [t["code"] for t in updated.json()["entity_types"]] == ["lead"]
        assert names(await client.get("/workplaces")) == ["Zeta", "Omega", "Alpha"]
        problem(await client.patch(f"/workplaces/{second['id']}", json={"name": "omega"}), 409)
        problem(await client.post("/workplaces", json={"name": "ZETA"}), 409)
        assert (await client.delete(f"/workplaces/{third['id']}")).status_code == 204
        problem(await client.get(f"/workplaces/{third['id']}"), 404)
        assert names(await client.get("/workplaces")) == ["Zeta", "Alpha"]

    async def test_unknown_and_foreign_references_are_refused(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "lead")
        theirs = await create_type(other_client, "secret")
        their_role = (await other_client.post("/api-keys", json={"name": "k", "role": "viewer"})).json()["role_id"]
        body = {"name": "W", "entity_types": ["lead", "nope", theirs["id"]], "role_ids": [their_role]}
        refused = problem(await client.post("/workplaces", json=body), 422)
        assert {e["field"] for e in refused["errors"]} == {"entity_types[1]", "entity_types[2]", "role_ids[0]"}
        problem(await client.post("/workplaces", json={"name": "x" * 201}), 422)
        problem(await client.post("/workplaces", json={"name": "W", "entity_types": ["x" * 100_000]}), 422)
        assert names(await client.get("/workplaces")) == []
        mine = await workplace(client, "Mine")
        problem(await client.patch(f"/workplaces/{mine['id']}", json={"role_ids": [their_role]}), 422)
        theirs_workplace = await workplace(other_client, "Theirs")
        problem(await client.get(f"/workplaces/{theirs_workplace['id']}"), 404)
        problem(await client.patch(f"/workplaces/{theirs_workplace['id']}", json={"name": "Taken"}), 404)
        problem(await client.delete(f"/workplaces/{theirs_workplace['id']}"), 404)
        assert names(await other_client.get("/workplaces")) == ["Theirs"]

    async def test_only_an_admin_writes(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        made = await workplace(client, "Sales")
        for role in ("viewer", "editor"):
            async with make_client(app, await key_for(client, role)) as other:
                problem(await other.post("/workplaces", json={"name": "Mine"}), 403)
                problem(await other.patch(f"/workplaces/{made['id']}", json={"name": "Mine"}), 403)
                problem(await other.delete(f"/workplaces/{made['id']}"), 403)
        assert names(await client.get("/workplaces")) == ["Sales"]


class TestVisibility:
    async def test_a_key_sees_the_workplaces_of_its_role_with_the_types_it_may_read(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await create_type(client, "lead")
        await create_type(client, "deal")
        await create_type(client, "invoice")
        sellers = await make_role(app, tenant, "sellers", ["lead", "deal"])
        accountants = await make_role(app, tenant, "accountants", ["invoice"])
        await workplace(client, "Sales", entity_types=["lead", "deal", "invoice"], role_ids=[sellers])
        await workplace(client, "Billing", entity_types=["invoice"], role_ids=[accountants])
        await workplace(client, "Everyone", entity_types=["lead", "invoice"])
        await workplace(client, "Reports", role_ids=[sellers, accountants])

        async with make_client(app, await key_for(client, "sellers")) as seller:
            seen = (await seller.get("/workplaces")).json()["items"]
            assert {w["name"]: [t["code"] for t in w["entity_types"]] for w in seen} == {
                "Sales": ["lead", "deal"],
                "Everyone": ["lead"],
                "Reports": [],
            }
            billing = next(w for w in (await client.get("/workplaces")).json()["items"] if w["name"] == "Billing")
            problem(await seller.get(f"/workplaces/{billing['id']}"), 404)
        async with make_client(app, await key_for(client, "accountants")) as accountant:
            seen = (await accountant.get("/workplaces")).json()["items"]
            assert {w["name"]: [t["code"] for t in w["entity_types"]] for w in seen} == {
                "Billing": ["invoice"],
                "Everyone": ["invoice"],
                "Reports": [],
            }
        # A workplace whose every type is unreadable is left out, not shown empty.
        nothing = await make_role(app, tenant, "nothing", [])
        async with make_client(app, await key_for(client, "nothing")) as outsider:
            assert names(await outsider.get("/workplaces")) == []
        await workplace(client, "Open", role_ids=[nothing])
        async with make_client(app, await key_for(client, "nothing")) as outsider:
            assert names(await outsider.get("/workplaces")) == ["Open"]
        # The built-in viewer reads every type but holds none of the roles chosen; the admin sees everything whole.
        async with make_client(app, await key_for(client, "viewer")) as viewer:
            seen = (await viewer.get("/workplaces")).json()["items"]
            assert [(w["name"], [t["code"] for t in w["entity_types"]]) for w in seen] == [
                ("Everyone", ["lead", "invoice"])
            ]
        admin_view = (await client.get("/workplaces")).json()["items"]
        assert [w["name"] for w in admin_view] == ["Billing", "Everyone", "Open", "Reports", "Sales"]
        assert [t["code"] for t in admin_view[-1]["entity_types"]] == ["lead", "deal", "invoice"]

    async def test_a_person_sees_the_workplaces_of_any_of_their_roles(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await create_type(client, "lead")
        await create_type(client, "invoice")
        sellers = await make_role(app, tenant, "sellers", ["lead"])
        accountants = await make_role(app, tenant, "accountants", ["invoice"])
        await make_role(app, tenant, "others", ["lead", "invoice"])
        await workplace(client, "Sales", entity_types=["lead", "invoice"], role_ids=[sellers])
        await workplace(client, "Billing", entity_types=["invoice"], role_ids=[accountants])
        ann = await create_user(client, "Ann", role_ids=[sellers, accountants])
        async with unit_of_work(app.state.sessionmaker) as session:
            snapshot = await load_snapshot(await session_connection(session), tenant.workspace_id)
            access = snapshot.for_user(uuid.UUID(ann["id"]))
            assert access is not None
            actor = Actor(tenant.workspace_id, role=access.level, user_id=uuid.UUID(ann["id"]), access=access)
            seen = await workplace_service.list_workplaces(session, actor)
        assert {w.name: [t.code for t in w.entity_types] for w in seen} == {
            "Sales": ["lead", "invoice"],
            "Billing": ["invoice"],
        }


class TestGraphQL:
    async def test_create_update_list_delete(self, client: httpx.AsyncClient, run: Run) -> None:
        await create_type(client, "lead")
        result = "__typename ... on Workplace { id name sort entityTypes { code title } roleIds } ... on Error { code }"
        created = (
            await run(
                f"mutation($input: WorkplaceCreateInput!) {{ createWorkplace(input: $input) {{ {result} }} }}",
                input={"name": "Sales", "entityTypes": ["lead"]},
            )
        )["createWorkplace"]
        assert created["entityTypes"] == [{"code": "lead", "title": "Lead"}]
        updated = (
            await run(
                f"mutation($id: UUID!, $input: WorkplaceUpdateInput!) {{ updateWorkplace(id: $id, input: $input) "
                f"{{ {result} ... on ValidationError {{ fields {{ field }} }} }} }}",
                id=created["id"],
                input={"sort": 5, "entityTypes": ["nope"]},
            )
        )["updateWorkplace"]
        assert (updated["__typename"], updated["fields"]) == ("ValidationError", [{"field": "entity_types[0]"}])
        assert (await run("{ workplaces { name sort } }"))["workplaces"] == [{"name": "Sales", "sort": 0}]
        deleted = (await run("mutation($id: UUID!) { deleteWorkplace(id: $id) { __typename } }", id=created["id"]))[
            "deleteWorkplace"
        ]
        assert deleted == {"__typename": "Deleted"}
        assert (await run("{ workplaces { name } }"))["workplaces"] == []

    async def test_a_viewer_may_not_write(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async with http_client(app, await key_for(client, "viewer")) as gql:
            mutation = GraphQLRequest('mutation { createWorkplace(input: {name: "X"}) { __typename } }')
            created = await gql.execute(mutation)
        assert created == {"createWorkplace": {"__typename": "Forbidden"}}
