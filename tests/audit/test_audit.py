"""The audit log: every committed write through REST or GraphQL leaves one row (who, from where, what, when)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from tests.conftest import QueryCounter, Tenant, make_client
from tests.factories import create_element, create_type, create_user
from tests.graphql.conftest import Run, http_client


async def new_key(client: httpx.AsyncClient, role: str = "editor") -> dict[str, Any]:
    response = await client.post("/api-keys", json={"name": f"{role} key", "role": role})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def entries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


class TestRest:
    async def test_a_write_records_who_from_where_and_what(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        await client.post("/entity-types/lead/fields", json={"code": "budget", "type": "decimal"})
        key = await new_key(client)
        async with make_client(app, key["api_key"]) as editor:
            element = await create_element(editor, "lead", title="ACME", values={"budget": 10})
            change = {"title": "ACME 2", "values": {"budget": 5}}
            updated = await editor.patch(f"/elements/{element['id']}", json=change)
            assert updated.status_code == 200
        created, patched = (await entries(client, api_key_id=key["id"]))[::-1]
        assert created == {
            **created,
            "api_key_id": key["id"],
            "user_id": None,
            "address": "127.0.0.1",
            "action": "POST /api/v1/entity-types/{type}/elements",
            "object_type": "element",
            "object_id": element["id"],
            "element_id": element["id"],
            "status": 201,
            "details": {"params": {"type": "lead"}, "fields": ["title", "values"], "values": ["budget"]},
        }
        assert patched == {
            **patched,
            "action": "PATCH /api/v1/elements/{element_id}",
            "element_id": element["id"],
            "status": 200,
            "details": {"params": {"element_id": element["id"]}, "fields": ["title", "values"], "values": ["budget"]},
        }
        assert patched["at"] > created["at"]

    async def test_a_write_costs_one_statement_more(
        self, client: httpx.AsyncClient, count_queries: Callable[[], QueryCounter]
    ) -> None:
        await create_type(client, "lead")
        element = await create_element(client, "lead", title="A")
        counter = count_queries()
        assert (await client.patch(f"/elements/{element['id']}", json={"title": "B"})).status_code == 200
        audit_statements = [s for s in counter.statements if "audit_log" in s]
        assert len(audit_statements) == 1
        assert audit_statements[0].startswith("INSERT INTO audit_log")

    async def test_secrets_are_never_recorded(self, client: httpx.AsyncClient) -> None:
        user = await create_user(client, "Ann", password="correct horse battery")
        await client.patch(f"/users/{user['id']}", json={"password": "another secret value"})
        key = await new_key(client)
        rows = await entries(client)
        text = str(rows)
        assert "correct horse" not in text
        assert "another secret" not in text
        assert key["api_key"] not in text
        assert rows[0]["object_id"] == key["id"]
        assert rows[1]["details"]["fields"] == ["password"]

    async def test_reads_and_refused_writes_leave_no_row(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "lead")
        before = await entries(client)
        await client.get("/entity-types/lead/elements")
        await client.post("/entity-types/lead/elements/search", json={})
        problem(await client.post("/entity-types/lead/elements", json={"title": "x", "values": {"nope": 1}}), 422)
        problem(await viewer_client.post("/entity-types/lead/elements", json={"title": "x"}), 403)
        problem(await client.delete("/users/00000000-0000-0000-0000-000000000000"), 404)
        assert await entries(client) == before

    async def test_idempotent_writes_are_recorded_once(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        headers = {"Idempotency-Key": "once"}
        first = await client.post("/entity-types/lead/elements", json={"title": "A"}, headers=headers)
        again = await client.post("/entity-types/lead/elements", json={"title": "A"}, headers=headers)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert [e["object_id"] for e in await entries(client, object_type="element")] == [first.json()["id"]]

    async def test_filters_and_paging(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        started = datetime.now(UTC)
        ids = [(await create_element(client, "lead", title=f"E{i}"))["id"] for i in range(5)]
        action = "POST /api/v1/entity-types/{type}/elements"
        page = await client.get("/audit", params={"action": action, "limit": 2})
        seen = [e["object_id"] for e in page.json()["items"]]
        while page.json()["next_cursor"]:
            params = {"action": action, "limit": 2, "cursor": page.json()["next_cursor"]}
            page = await client.get("/audit", params=params)
            seen += [e["object_id"] for e in page.json()["items"]]
        assert seen == ids[::-1]
        assert [e["element_id"] for e in await entries(client, element_id=ids[2])] == [ids[2]]
        assert await entries(client, **{"from": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}) == []
        assert len(await entries(client, **{"from": started.isoformat(), "action": action})) == 5
        assert await entries(client, to=started.isoformat(), action=action) == []
        problem(await client.get("/audit", params={"cursor": "not-a-cursor"}), 422)
        problem(await client.get("/audit", params={"limit": 0}), 422)

    async def test_per_element(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        element = await create_element(client, "lead", title="A")
        other = await create_element(client, "lead", title="B")
        await client.patch(f"/elements/{element['id']}", json={"title": "A2"})
        await client.delete(f"/elements/{element['id']}")
        trail = (await client.get(f"/elements/{element['id']}/audit")).json()["items"]
        assert [e["action"] for e in trail] == [
            "DELETE /api/v1/elements/{element_id}",
            "PATCH /api/v1/elements/{element_id}",
            "POST /api/v1/entity-types/{type}/elements",
        ]
        assert {e["element_id"] for e in trail} == {element["id"]}
        assert other["id"] not in str(trail)
        # An element of another workspace (or none at all) is not found, even to an admin.
        await create_type(other_client, "lead")
        theirs = await create_element(other_client, "lead", title="Theirs")
        problem(await client.get(f"/elements/{theirs['id']}/audit"), 404)
        problem(await client.get("/elements/00000000-0000-0000-0000-000000000000/audit"), 404)
        assert await entries(client, element_id=theirs["id"]) == []
        assert len((await other_client.get(f"/elements/{theirs['id']}/audit")).json()["items"]) == 1

    async def test_only_admins_read_it(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        element = await create_element(client, "lead", title="A")
        for role in ("viewer", "editor"):
            async with make_client(app, (await new_key(client, role))["api_key"]) as other:
                problem(await other.get("/audit"), 403)
                problem(await other.get(f"/elements/{element['id']}/audit"), 403)

    async def test_a_workspace_sees_only_its_own(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await create_type(other_client, "secret")
        assert all(e["object_id"] != theirs["id"] for e in await entries(client))
        [row] = await entries(other_client)
        assert (row["object_type"], row["object_id"], row["action"]) == (
            "entity_type",
            theirs["id"],
            "POST /api/v1/entity-types",
        )


class TestGraphQL:
    async def test_a_mutation_records_its_name_key_and_address(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await create_type(client, "lead")
        key = await new_key(client)
        async with http_client(app, key["api_key"]) as gql:
            created = await gql.execute(
                GraphQLRequest('mutation { createLead(input: {title: "ACME"}) { __typename ... on Lead { id } } }')
            )
            element_id = created["createLead"]["id"]
            await gql.execute(
                GraphQLRequest(
                    'mutation($id: UUID!) { updateElement(id: $id, input: {title: "B"}) { __typename } '
                    "deleteElement(id: $id) { __typename } }",
                    variable_values={"id": element_id},
                )
            )
            forbidden = GraphQLRequest('mutation { createDepartment(input: {name: "X"}) { __typename } }')
            refused = await gql.execute(forbidden)
        assert refused == {"createDepartment": {"__typename": "Forbidden"}}
        rows = await entries(client, api_key_id=key["id"])
        assert [(e["action"], e["object_type"], e["element_id"]) for e in rows] == [
            ("deleteElement", "element", element_id),
            ("updateElement", "element", element_id),
            ("createLead", "lead", element_id),
        ]
        assert {(e["address"], e["status"], e["user_id"]) for e in rows} == {("127.0.0.1", 200, None)}
        assert rows[1]["details"] == {"arguments": ["id", "input"], "fields": ["title"]}
        assert rows[2]["details"] == {"arguments": ["input"], "fields": ["title"]}

    async def test_audit_log_query(self, client: httpx.AsyncClient, run: Run, app: FastAPI) -> None:
        await create_type(client, "lead")
        element = await create_element(client, "lead", title="A")
        await client.patch(f"/elements/{element['id']}", json={"title": "B"})
        query = """query($element: UUID, $after: String) {
          auditLog(elementId: $element, first: 1, after: $after) {
            nodes { action objectType elementId apiKeyId address status details }
            pageInfo { hasNextPage endCursor }
          }
        }"""
        first = (await run(query, element=element["id"]))["auditLog"]
        assert first["nodes"][0]["action"] == "PATCH /api/v1/elements/{element_id}"
        assert first["pageInfo"]["hasNextPage"] is True
        second = (await run(query, element=element["id"], after=first["pageInfo"]["endCursor"]))["auditLog"]
        assert [n["action"] for n in second["nodes"]] == ["POST /api/v1/entity-types/{type}/elements"]
        assert second["pageInfo"] == {"hasNextPage": False, "endCursor": None}
        async with http_client(app, (await new_key(client, "viewer"))["api_key"]) as gql:
            with pytest.raises(TransportQueryError) as refused:
                await gql.execute(GraphQLRequest("{ auditLog { nodes { action } } }"))
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "forbidden"
