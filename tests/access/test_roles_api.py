"""Roles through REST (`/roles`, `PUT /users/{id}/roles`, `PATCH /api-keys/{id}`) and GraphQL: admin only, scoped to
the workspace, built-in roles fixed, every reference checked, the `import` scope named `import` on the wire."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest

from tests.conftest import Tenant, make_client
from tests.factories import create_field, create_type, create_user, default_pipeline, lead_type
from tests.graphql.conftest import Run, http_client


def problem_fields(response: httpx.Response, status: int = 422) -> set[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"] for e in response.json().get("errors") or []}


async def role_body(client: httpx.AsyncClient, name: str = "Lead desk") -> dict[str, Any]:
    """Own leads everywhere, every lead in the second pipeline, no moving into WON, budget hidden."""
    pipeline = await default_pipeline(client, "lead")
    await client.patch("/entity-types/lead", json={"settings": {"pipelines_enabled": True}})
    other = (await client.post("/entity-types/lead/pipelines", json={"title": "Partners"})).json()
    won = next(s for s in pipeline["stages"] if s["code"] == "SUCCESS")
    return {
        "name": name,
        "description": "Sales desk",
        "grants": [
            {"entity_type": "lead", "read": "own", "add": "all", "update": "own", "import": "all"},
            {"entity_type": "lead", "pipeline_id": other["id"], "read": "all", "update": "department"},
        ],
        "stage_rules": [{"stage_id": won["id"], "move_into": False}],
        "field_rules": [{"entity_type": "lead", "field": "budget", "access": "hidden"}],
    }


@pytest.fixture
async def run(app: FastAPI, tenant: Tenant) -> AsyncIterator[Run]:
    """`await run(query, **variables)` as the admin -> the result's data."""
    async with http_client(app, tenant.admin_key) as session:

        async def execute(query: str, **variables: Any) -> dict[str, Any]:
            result: dict[str, Any] = await session.execute(GraphQLRequest(query, variable_values=variables))
            return result

        yield execute


async def new_key(client: httpx.AsyncClient, role: str) -> str:
    key: str = (await client.post("/api-keys", json={"name": role, "role": role})).json()["api_key"]
    return key


class TestRoundTrip:
    async def test_create_read_update_delete(self, client: httpx.AsyncClient) -> None:
        lead = await lead_type(client)
        body = await role_body(client)
        created = await client.post("/roles", json=body)
        assert created.status_code == 201, created.text
        role = created.json()
        assert (role["name"], role["builtin"], role["level"]) == ("Lead desk", False, "viewer")
        type_grant, pipeline_grant = role["grants"]
        assert type_grant == {
            "entity_type": "lead",
            "entity_type_id": lead["id"],
            "pipeline_id": None,
            "read": "own",
            "add": "all",
            "update": "own",
            "delete": "none",
            "export": "none",
            "import": "all",
        }
        assert "import_" not in created.text
        assert (pipeline_grant["pipeline_id"], pipeline_grant["read"], pipeline_grant["import"]) == (
            body["grants"][1]["pipeline_id"],
            "all",
            "none",
        )
        assert role["stage_rules"] == [{**body["stage_rules"][0], "entity_type_id": lead["id"]}]
        assert role["field_rules"] == [{**body["field_rules"][0], "entity_type_id": lead["id"]}]
        assert (await client.get(f"/roles/{role['id']}")).json() == role

        patched = await client.patch(
            f"/roles/{role['id']}",
            json={"name": "Lead desk 2", "level": "editor", "grants": [{"entity_type": lead["id"], "import": "own"}]},
        )
        assert patched.status_code == 200, patched.text
        after = patched.json()
        assert (after["name"], after["level"]) == ("Lead desk 2", "editor")
        assert [(g["entity_type"], g["read"], g["import"]) for g in after["grants"]] == [("lead", "none", "own")]
        assert after["stage_rules"] == role["stage_rules"]  # lists not given stay
        assert after["field_rules"] == role["field_rules"]

        listed = (await client.get("/roles")).json()["items"]
        assert [(r["name"], r["builtin"]) for r in listed] == [
            ("admin", True),
            ("editor", True),
            ("viewer", True),
            ("Lead desk 2", False),
        ]
        assert (await client.delete(f"/roles/{role['id']}")).status_code == 204
        assert (await client.get(f"/roles/{role['id']}")).status_code == 404
        assert (await client.delete(f"/roles/{role['id']}")).status_code == 404

    async def test_the_import_scope_is_named_import_in_the_openapi_document(self, app: FastAPI) -> None:
        schemas = app.openapi()["components"]["schemas"]
        for name in ("GrantIn", "Grant"):
            assert "import" in schemas[name]["properties"]
            assert "import_" not in schemas[name]["properties"]
        assert "import_" not in str(schemas["RoleRead"]) + str(schemas["RoleCreate"])

    async def test_users_get_roles(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        role = (await client.post("/roles", json=await role_body(client))).json()
        viewer = next(r for r in (await client.get("/roles")).json()["items"] if r["name"] == "viewer")
        ann = await create_user(client, "Ann")
        answer = await client.put(f"/users/{ann['id']}/roles", json={"role_ids": [role["id"], viewer["id"]]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["role_ids"] == sorted([role["id"], viewer["id"]])
        assert (await client.get(f"/users/{ann['id']}")).json()["role_ids"] == answer.json()["role_ids"]
        cleared = await client.put(f"/users/{ann['id']}/roles", json={"role_ids": []})
        assert cleared.json()["role_ids"] == []
        # A deleted role leaves its holders.
        await client.put(f"/users/{ann['id']}/roles", json={"role_ids": [role["id"]]})
        assert (await client.delete(f"/roles/{role['id']}")).status_code == 204
        assert (await client.get(f"/users/{ann['id']}")).json()["role_ids"] == []


class TestApiKeyRoles:
    async def test_a_key_with_a_custom_role_and_its_role_changed(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        role = (await client.post("/roles", json={"name": "Readers", "grants": [{"entity_type": "lead"}]})).json()
        created = await client.post("/api-keys", json={"name": "desk", "role": "Readers"})
        assert created.status_code == 201, created.text
        key = created.json()
        assert (key["role"], key["role_id"]) == ("Readers", role["id"])
        async with make_client(app, key["api_key"]) as desk:
            assert (await desk.post("/entity-types", json={"code": "deal", "title": "Deal"})).status_code == 403
            patched = await client.patch(f"/api-keys/{key['id']}", json={"role": "editor", "name": "desk 2"})
            assert patched.status_code == 200, patched.text
            assert (patched.json()["role"], patched.json()["name"]) == ("editor", "desk 2")
            assert "api_key" not in patched.json()
            # The very next request acts with the new role: the auth cache forgot the key.
            assert (await desk.post("/entity-types", json={"code": "deal", "title": "Deal"})).status_code == 201
            by_id = await client.patch(f"/api-keys/{key['id']}", json={"role_id": role["id"]})
            assert by_id.json()["role"] == "Readers"
            assert (await desk.post("/entity-types", json={"code": "deal2", "title": "Deal"})).status_code == 403

    async def test_bad_key_updates(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        key = (await client.post("/api-keys", json={"name": "k", "role": "viewer"})).json()
        assert problem_fields(await client.patch(f"/api-keys/{key['id']}", json={"role": "owner"})) == {"role"}
        foreign_role = (await other_client.post("/roles", json={"name": "Theirs"})).json()
        assert problem_fields(await client.patch(f"/api-keys/{key['id']}", json={"role_id": foreign_role["id"]})) == {
            "role"
        }
        both = await client.patch(f"/api-keys/{key['id']}", json={"role": "viewer", "role_id": foreign_role["id"]})
        assert problem_fields(both) == {"role_id"}
        assert problem_fields(await client.patch(f"/api-keys/{key['id']}", json={"secret": "x"})) == {"secret"}
        assert (await other_client.patch(f"/api-keys/{key['id']}", json={"role": "admin"})).status_code == 404
        assert (await client.get("/api-keys")).json()["items"][-1]["role"] == "viewer"
        revoked = (await client.post("/api-keys", json={"name": "gone", "role": "viewer"})).json()
        await client.delete(f"/api-keys/{revoked['id']}")
        assert (await client.patch(f"/api-keys/{revoked['id']}", json={"role": "admin"})).status_code == 404

    async def test_a_key_cannot_change_its_own_role(self, client: httpx.AsyncClient) -> None:
        own = next(k for k in (await client.get("/api-keys")).json()["items"] if k["role"] == "admin")
        assert (await client.patch(f"/api-keys/{own['id']}", json={"role": "viewer"})).status_code == 409
        assert (await client.patch(f"/api-keys/{own['id']}", json={"name": "renamed"})).status_code == 200
        assert (await client.get("/roles")).status_code == 200  # still an admin

    async def test_a_role_in_use_by_a_key_cannot_be_deleted(self, client: httpx.AsyncClient) -> None:
        role = (await client.post("/roles", json={"name": "Bots"})).json()
        key = (await client.post("/api-keys", json={"name": "bot", "role_id": role["id"]})).json()
        assert problem_fields(await client.delete(f"/roles/{role['id']}"), 409) == set()
        assert (await client.get(f"/roles/{role['id']}")).status_code == 200
        await client.patch(f"/api-keys/{key['id']}", json={"role": "viewer"})
        assert (await client.delete(f"/roles/{role['id']}")).status_code == 204


class TestRefusals:
    @pytest.mark.parametrize("who", ["editor", "viewer"])
    async def test_only_admins(self, app: FastAPI, client: httpx.AsyncClient, who: str) -> None:
        await lead_type(client)
        role = (await client.post("/roles", json={"name": "Desk"})).json()
        ann = await create_user(client, "Ann")
        key = (await client.post("/api-keys", json={"name": "k", "role": "viewer"})).json()
        async with make_client(app, key["api_key"] if who == "viewer" else await new_key(client, who)) as other:
            await self._refused(client, other, role, ann, key)

    async def _refused(
        self,
        client: httpx.AsyncClient,
        other: httpx.AsyncClient,
        role: dict[str, Any],
        ann: dict[str, Any],
        key: dict[str, Any],
    ) -> None:
        calls = [
            other.get("/roles"),
            other.get(f"/roles/{role['id']}"),
            other.post("/roles", json={"name": "Mine", "level": "admin"}),
            other.patch(f"/roles/{role['id']}", json={"level": "admin"}),
            other.delete(f"/roles/{role['id']}"),
            other.put(f"/users/{ann['id']}/roles", json={"role_ids": [role["id"]]}),
            other.patch(f"/api-keys/{key['id']}", json={"role": "admin"}),
        ]
        for call in calls:
            response = await call
            assert response.status_code == 403, response.text
            assert role["id"] not in response.text
        assert [r["name"] for r in (await client.get("/roles")).json()["items"]] == [
            "admin",
            "editor",
            "viewer",
            "Desk",
        ]
        assert (await client.get(f"/roles/{role['id']}")).json() == role
        assert (await client.get(f"/users/{ann['id']}")).json()["role_ids"] == []
        keys = (await client.get("/api-keys")).json()["items"]
        assert next(k for k in keys if k["id"] == key["id"])["role"] == "viewer"

    async def test_builtin_roles_cannot_be_changed_or_deleted(self, client: httpx.AsyncClient) -> None:
        for builtin in (await client.get("/roles")).json()["items"]:
            assert builtin["builtin"] is True
            assert (await client.patch(f"/roles/{builtin['id']}", json={"description": "x"})).status_code == 403
            assert (await client.delete(f"/roles/{builtin['id']}")).status_code == 403
        assert [r["description"] for r in (await client.get("/roles")).json()["items"]] == [
            r["description"] for r in (await client.get("/roles")).json()["items"] if r["builtin"]
        ]

    async def test_names_are_unique(self, client: httpx.AsyncClient) -> None:
        first = (await client.post("/roles", json={"name": "Desk"})).json()
        assert (await client.post("/roles", json={"name": "desk"})).status_code == 409
        assert (await client.post("/roles", json={"name": "Admin"})).status_code == 409
        second = (await client.post("/roles", json={"name": "Other"})).json()
        assert (await client.patch(f"/roles/{second['id']}", json={"name": "DESK"})).status_code == 409
        assert (await client.patch(f"/roles/{first['id']}", json={"name": "DESK"})).status_code == 200
        assert sorted(r["name"] for r in (await client.get("/roles")).json()["items"] if not r["builtin"]) == [
            "DESK",
            "Other",
        ]

    async def test_validation(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await create_type(client, "deal")
        deal_pipeline = await default_pipeline(client, "deal")
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"grants": [{"entity_type": "nope", "read": "all"}]}, {"entity_type"}),
            ({"grants": [{"entity_type": "lead", "pipeline_id": deal_pipeline["id"]}]}, {"grants[0].pipeline_id"}),
            ({"field_rules": [{"entity_type": "lead", "field": "nope", "access": "hidden"}]}, {"field_rules[0].field"}),
            ({"grants": [{"entity_type": "lead"}, {"entity_type": "lead", "read": "all"}]}, {"grants[1]"}),
            ({"stage_rules": [{"stage_id": "00000000-0000-0000-0000-000000000000"}]}, {"stage_rules[0].stage_id"}),
            ({"grants": [{"entity_type": "lead", "read": "everything"}]}, {"grants.0.read"}),
            ({"grants": [{"entity_type": "lead", "import_": "all", "bogus": 1}]}, {"grants.0.bogus"}),
            ({"level": "owner"}, {"level"}),
            ({"name": "x" * 100_000}, {"name"}),
        ]
        for change, fields in cases:
            response = await client.post("/roles", json={"name": "Desk", **change})
            assert problem_fields(response) == fields, change
        assert [r["name"] for r in (await client.get("/roles")).json()["items"] if not r["builtin"]] == []
        role = (await client.post("/roles", json={"name": "Desk"})).json()
        for change, fields in cases[:5]:
            assert problem_fields(await client.patch(f"/roles/{role['id']}", json=change)) == fields, change
        assert (await client.get(f"/roles/{role['id']}")).json() == role

    async def test_another_workspaces_ids(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await lead_type(other_client)
        await create_field(other_client, "lead", "secret", "string")
        theirs = await default_pipeline(other_client, "lead")
        their_type = (await other_client.get("/entity-types/lead")).json()
        their_role = (await other_client.post("/roles", json={"name": "Theirs"})).json()
        their_user = await create_user(other_client, "Eve")
        mine = (await client.post("/roles", json={"name": "Mine"})).json()
        ann = await create_user(client, "Ann")

        assert (await client.get(f"/roles/{their_role['id']}")).status_code == 404
        assert (await client.patch(f"/roles/{their_role['id']}", json={"name": "x"})).status_code == 404
        assert (await client.delete(f"/roles/{their_role['id']}")).status_code == 404
        assert (await other_client.get(f"/roles/{mine['id']}")).status_code == 404
        foreign_user = await client.put(f"/users/{their_user['id']}/roles", json={"role_ids": [mine["id"]]})
        assert foreign_user.status_code == 404
        refused = await client.put(f"/users/{ann['id']}/roles", json={"role_ids": [their_role["id"]]})
        assert problem_fields(refused) == {"role_ids"}
        assert problem_fields(await client.post("/api-keys", json={"name": "k", "role_id": their_role["id"]})) == {
            "role"
        }
        assert problem_fields(await client.post("/api-keys", json={"name": "k", "role": "Theirs"})) == {"role"}
        bodies: list[tuple[dict[str, Any], set[str]]] = [
            ({"grants": [{"entity_type": their_type["id"], "read": "all"}]}, {"entity_type"}),
            ({"grants": [{"entity_type": "lead", "pipeline_id": theirs["id"]}]}, {"grants[0].pipeline_id"}),
            ({"stage_rules": [{"stage_id": theirs["stages"][0]["id"]}]}, {"stage_rules[0].stage_id"}),
            (
                {"field_rules": [{"entity_type": "lead", "field": "secret", "access": "hidden"}]},
                {"field_rules[0].field"},
            ),
        ]
        for body, fields in bodies:
            assert problem_fields(await client.post("/roles", json={"name": "New", **body})) == fields, body
            assert problem_fields(await client.patch(f"/roles/{mine['id']}", json=body)) == fields, body
        assert (await other_client.get(f"/roles/{their_role['id']}")).json() == their_role
        assert (await client.get(f"/users/{ann['id']}")).json()["role_ids"] == []
        assert (await other_client.get(f"/users/{their_user['id']}")).json()["role_ids"] == []


ROLE_FIELDS = "id name builtin level grants { entityType pipelineId read import } fieldRules { field access }"


class TestGraphQL:
    async def test_roles_through_graphql(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        ann = await create_user(client, "Ann")
        created = await run(
            f"""mutation($input: RoleCreateInput!) {{ createRole(input: $input) {{
                __typename ... on Role {{ {ROLE_FIELDS} }} }} }}""",
            input={
                "name": "Desk",
                "grants": [{"entityType": "lead", "read": "own", "import": "all"}],
                "fieldRules": [{"entityType": "lead", "field": "budget", "access": "read_only"}],
            },
        )
        role = created["createRole"]
        assert role["__typename"] == "Role", role
        assert role["grants"] == [{"entityType": "lead", "pipelineId": None, "read": "own", "import": "all"}]
        assert role["fieldRules"] == [{"field": "budget", "access": "read_only"}]
        rest = (await client.get(f"/roles/{role['id']}")).json()
        assert (rest["grants"][0]["read"], rest["grants"][0]["import"]) == ("own", "all")

        listed = await run("query($id: UUID!) { roles { name builtin } one: role(id: $id) { name } }", id=role["id"])
        assert [r["name"] for r in listed["roles"]] == ["admin", "editor", "viewer", "Desk"]
        assert listed["one"] == {"name": "Desk"}

        updated = await run(
            """mutation($id: UUID!) { updateRole(id: $id, input: {level: editor, grants: []}) {
                __typename ... on Role { level grants { read } } } }""",
            id=role["id"],
        )
        assert updated["updateRole"] == {"__typename": "Role", "level": "editor", "grants": []}

        held = await run(
            """mutation($user: UUID!, $roles: [UUID!]!) { setUserRoles(userId: $user, roleIds: $roles) {
                __typename ... on User { roleIds } } }""",
            user=ann["id"],
            roles=[role["id"]],
        )
        assert held["setUserRoles"] == {"__typename": "User", "roleIds": [role["id"]]}

        builtin = next(r for r in listed["roles"] if r["builtin"])
        assert builtin["name"] == "admin"
        admin_id = (await client.get("/roles")).json()["items"][0]["id"]
        refused = await run(
            "mutation($id: UUID!) { deleteRole(id: $id) { __typename ... on Error { code } } }", id=admin_id
        )
        assert refused["deleteRole"] == {"__typename": "Forbidden", "code": "forbidden"}
        deleted = await run("mutation($id: UUID!) { deleteRole(id: $id) { __typename } }", id=role["id"])
        assert deleted["deleteRole"] == {"__typename": "Deleted"}
        assert (await client.get(f"/users/{ann['id']}")).json()["role_ids"] == []

    async def test_validation_and_refusals(
        self, app: FastAPI, client: httpx.AsyncClient, other_client: httpx.AsyncClient, run: Run
    ) -> None:
        await lead_type(client)
        bad = await run(
            """mutation { createRole(input: {name: "Desk", grants: [{entityType: "nope"}]}) {
                __typename ... on ValidationError { fields { field } } } }"""
        )
        assert bad["createRole"] == {"__typename": "ValidationError", "fields": [{"field": "entity_type"}]}
        their_user = await create_user(other_client, "Eve")
        foreign = await run(
            """mutation($user: UUID!) { setUserRoles(userId: $user, roleIds: []) { __typename } }""",
            user=their_user["id"],
        )
        assert foreign["setUserRoles"] == {"__typename": "NotFound"}
        viewer = (await client.post("/api-keys", json={"name": "v", "role": "viewer"})).json()["api_key"]
        async with http_client(app, viewer) as gql:
            created = await gql.execute(
                GraphQLRequest('mutation { createRole(input: {name: "Mine", level: admin}) { __typename } }')
            )
            assert created["createRole"] == {"__typename": "Forbidden"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), headers={"Authorization": f"Bearer {viewer}"}
        ) as http:
            listed = (await http.post("http://testserver/graphql", json={"query": "{ roles { id } }"})).json()
        assert listed["data"] is None
        assert [e["extensions"]["code"] for e in listed["errors"]] == ["forbidden"]
        assert [r["name"] for r in (await client.get("/roles")).json()["items"]] == ["admin", "editor", "viewer"]
