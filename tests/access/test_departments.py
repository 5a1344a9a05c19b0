"""Departments: the tree behind `department` scope, through REST and GraphQL."""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from gql import GraphQLRequest

from app.access.snapshot import load_snapshot
from app.db import session_connection, unit_of_work
from tests.conftest import Tenant
from tests.factories import create_user
from tests.graphql.conftest import Run, http_client


async def department(client: httpx.AsyncClient, name: str, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/departments", json={"name": name, "parent_id": parent["id"] if parent else None})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


class TestRest:
    async def test_the_tree_is_listed_flat_in_tree_order_with_depth_and_path(self, client: httpx.AsyncClient) -> None:
        sales = await department(client, "Sales")
        north = await department(client, "North", sales)
        await department(client, "Moscow", north)
        await department(client, "Support")
        await department(client, "East", sales)
        assert north == {**north, "parent_id": sales["id"], "depth": 1, "path": ["Sales", "North"], "user_count": 0}
        listed = (await client.get("/departments")).json()["items"]
        assert [(d["name"], d["depth"], d["path"]) for d in listed] == [
            ("Sales", 0, ["Sales"]),
            ("East", 1, ["Sales", "East"]),
            ("North", 1, ["Sales", "North"]),
            ("Moscow", 2, ["Sales", "North", "Moscow"]),
            ("Support", 0, ["Support"]),
        ]
        got = (await client.get(f"/departments/{north['id']}")).json()
        assert (got["name"], got["path"]) == ("North", ["Sales", "North"])

    async def test_rename_and_move(self, client: httpx.AsyncClient) -> None:
        sales = await department(client, "Sales")
        support = await department(client, "Support")
        north = await department(client, "North", sales)
        child = await department(client, "Moscow", north)
        body = {"name": "  Northwest ", "parent_id": support["id"]}
        moved = await client.patch(f"/departments/{north['id']}", json=body)
        assert moved.status_code == 200, moved.text
        assert (moved.json()["name"], moved.json()["path"]) == ("Northwest", ["Support", "Northwest"])
        assert (await client.get(f"/departments/{child['id']}")).json()["path"] == ["Support", "Northwest", "Moscow"]
        # A rename alone keeps the parent; an explicit null makes a root.
        renamed = (await client.patch(f"/departments/{north['id']}", json={"name": "NW"})).json()
        assert renamed["parent_id"] == support["id"]
        root = (await client.patch(f"/departments/{north['id']}", json={"parent_id": None})).json()
        assert (root["parent_id"], root["depth"]) == (None, 0)

    async def test_a_move_under_itself_or_below_is_refused(self, client: httpx.AsyncClient) -> None:
        sales = await department(client, "Sales")
        north = await department(client, "North", sales)
        moscow = await department(client, "Moscow", north)
        for target in (sales, north, moscow):
            refused = problem(await client.patch(f"/departments/{sales['id']}", json={"parent_id": target["id"]}), 422)
            assert [e["field"] for e in refused["errors"]] == ["parent_id"]
        assert (await client.get(f"/departments/{sales['id']}")).json()["parent_id"] is None

    async def test_delete_is_refused_while_it_holds_departments_or_users(self, client: httpx.AsyncClient) -> None:
        sales = await department(client, "Sales")
        north = await department(client, "North", sales)
        assert "1 sub-departments" in problem(await client.delete(f"/departments/{sales['id']}"), 409)["detail"]
        user = await create_user(client, "Ann", department_id=north["id"])
        assert (await client.get(f"/departments/{north['id']}")).json()["user_count"] == 1
        assert "1 users" in problem(await client.delete(f"/departments/{north['id']}"), 409)["detail"]
        assert (await client.patch(f"/users/{user['id']}", json={"department_id": None})).status_code == 200
        assert (await client.delete(f"/departments/{north['id']}")).status_code == 204
        assert (await client.delete(f"/departments/{sales['id']}")).status_code == 204
        assert (await client.get("/departments")).json()["items"] == []
        problem(await client.get(f"/departments/{sales['id']}"), 404)

    async def test_names_are_bounded(self, client: httpx.AsyncClient) -> None:
        for name in ("", "   ", "x" * 201, "x" * 100_000):
            problem(await client.post("/departments", json={"name": name}), 422)
        assert (await department(client, "x" * 200))["name"] == "x" * 200

    async def test_only_an_admin_writes_and_everyone_reads(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        sales = await department(client, "Sales")
        problem(await viewer_client.post("/departments", json={"name": "Mine"}), 403)
        problem(await viewer_client.patch(f"/departments/{sales['id']}", json={"name": "Mine"}), 403)
        problem(await viewer_client.delete(f"/departments/{sales['id']}"), 403)
        assert [d["name"] for d in (await viewer_client.get("/departments")).json()["items"]] == ["Sales"]
        assert (await viewer_client.get(f"/departments/{sales['id']}")).json()["name"] == "Sales"

    async def test_another_workspaces_department_is_never_found_nor_accepted(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await department(other_client, "Theirs")
        mine = await department(client, "Mine")
        problem(await client.get(f"/departments/{theirs['id']}"), 404)
        problem(await client.patch(f"/departments/{theirs['id']}", json={"name": "Taken"}), 404)
        problem(await client.delete(f"/departments/{theirs['id']}"), 404)
        refused = problem(await client.post("/departments", json={"name": "Child", "parent_id": theirs["id"]}), 422)
        assert [e["field"] for e in refused["errors"]] == ["parent_id"]
        problem(await client.patch(f"/departments/{mine['id']}", json={"parent_id": theirs["id"]}), 422)
        assert [d["name"] for d in (await client.get("/departments")).json()["items"]] == ["Mine"]
        assert (await other_client.get(f"/departments/{theirs['id']}")).json()["name"] == "Theirs"

    async def test_department_scope_sees_a_move_at_once(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        """A write drops this process's access snapshot: department scope follows the new tree immediately."""
        sales = await department(client, "Sales")
        north = await department(client, "North")
        ann = await create_user(client, "Ann", department_id=sales["id"])
        bob = await create_user(client, "Bob", department_id=north["id"])

        async def members_of_anns_department() -> tuple[Any, ...]:
            async with unit_of_work(app.state.sessionmaker) as session:
                snapshot = await load_snapshot(await session_connection(session), tenant.workspace_id)
            return tuple(str(u) for u in snapshot.department_users(uuid.UUID(ann["id"])))

        assert await members_of_anns_department() == (ann["id"],)
        assert (await client.patch(f"/departments/{north['id']}", json={"parent_id": sales["id"]})).status_code == 200
        assert set(await members_of_anns_department()) == {ann["id"], bob["id"]}


DEPARTMENT = "__typename ... on Department { id name parentId depth path userCount } ... on Error { code message }"


class TestGraphQL:
    async def test_create_move_list_delete(self, client: httpx.AsyncClient, run: Run) -> None:
        create = f"mutation($input: DepartmentCreateInput!) {{ createDepartment(input: $input) {{ {DEPARTMENT} }} }}"
        sales = (await run(create, input={"name": "Sales"}))["createDepartment"]
        north = (await run(create, input={"name": "North", "parentId": sales["id"]}))["createDepartment"]
        assert (north["depth"], north["path"]) == (1, ["Sales", "North"])
        update = (
            f"mutation($id: UUID!, $input: DepartmentUpdateInput!) {{ updateDepartment(id: $id, input: $input) "
            f"{{ {DEPARTMENT} ... on ValidationError {{ fields {{ field }} }} }} }}"
        )
        cycle = (await run(update, id=sales["id"], input={"parentId": north["id"]}))["updateDepartment"]
        assert (cycle["__typename"], cycle["fields"]) == ("ValidationError", [{"field": "parent_id"}])
        root = (await run(update, id=north["id"], input={"parentId": None, "name": "N"}))["updateDepartment"]
        assert (root["name"], root["parentId"], root["path"]) == ("N", None, ["N"])
        listed = (await run("{ departments { name depth } }"))["departments"]
        assert listed == [{"name": "N", "depth": 0}, {"name": "Sales", "depth": 0}]
        delete = "mutation($id: UUID!) { deleteDepartment(id: $id) { __typename ... on Error { code } } }"
        await run(update, id=north["id"], input={"parentId": sales["id"]})
        assert (await run(delete, id=sales["id"]))["deleteDepartment"] == {"__typename": "Conflict", "code": "conflict"}
        assert (await run(delete, id=north["id"]))["deleteDepartment"] == {"__typename": "Deleted"}

    async def test_a_viewer_may_read_but_not_write(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await department(client, "Sales")
        viewer = (await client.post("/api-keys", json={"name": "v", "role": "viewer"})).json()["api_key"]
        async with http_client(app, viewer) as gql:
            listed = await gql.execute(GraphQLRequest("{ departments { name } }"))
            created = await gql.execute(
                GraphQLRequest('mutation { createDepartment(input: {name: "X"}) { __typename } }')
            )
        assert listed == {"departments": [{"name": "Sales"}]}
        assert created == {"createDepartment": {"__typename": "Forbidden"}}
