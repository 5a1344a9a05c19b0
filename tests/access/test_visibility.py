"""What a role sees besides elements (app/access/visibility.py): the configuration of the types it may read, logs
only with a built-in role, tasks and notifications of its own and of the elements it may read."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.access.snapshot import load_snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.db import session_connection, unit_of_work
from app.tasks import service as task_service
from tests.conftest import Tenant, make_client
from tests.factories import create_element, create_field, create_type, create_user, created, default_pipeline


async def key_for(client: httpx.AsyncClient, name: str, **role: Any) -> str:
    created(await client.post("/roles", json={"name": name, **role}))
    return str(created(await client.post("/api-keys", json={"name": name, "role": name}))["api_key"])


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    """`lead` (with a `secret` field) and `company`, each with a rule, a scoring model and a routing policy."""
    ids: dict[str, Any] = {}
    for code in ("lead", "company"):
        ids[code] = await create_type(client, code)
        await create_field(client, code, "note", "string")
        ids[f"{code}_pipeline"] = await default_pipeline(client, code)
        ids[f"{code}_rule"] = created(
            await client.post(
                "/automation/rules",
                json={
                    "name": f"{code} rule",
                    "entity_type": code,
                    "trigger": {"type": "element.created"},
                    "actions": [{"type": "add_comment", "params": {"text": "hi"}}],
                },
            )
        )
        ids[f"{code}_model"] = created(
            await client.post(
                "/scoring/models",
                json={
                    "name": f"{code} fit",
                    "entity_type": code,
                    "kind": "factors",
                    "factors": [{"kind": "presence", "field": "note", "points": 5}],
                },
            )
        )
        ids[f"{code}_policy"] = created(
            await client.post("/routing/policies", json={"name": f"{code} tiers", "entity_type": code})
        )
    await create_field(client, "lead", "secret", "string")
    created(await client.post("/relations", json={"parent_type": "company", "child_type": "lead"}))
    return ids


@pytest.fixture
async def lead_reader(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """A key that may read its own leads, with `secret` hidden, and nothing of companies."""
    key = await key_for(
        client,
        "Lead reader",
        grants=[{"entity_type": "lead", "read": "own"}],
        field_rules=[{"entity_type": "lead", "field": "secret", "access": "hidden"}],
    )
    async with make_client(app, key) as http:
        yield http


class TestConfiguration:
    async def test_only_the_types_the_role_reads(self, lead_reader: httpx.AsyncClient, world: dict[str, Any]) -> None:
        assert [t["code"] for t in (await lead_reader.get("/entity-types")).json()["items"]] == ["lead"]
        assert (await lead_reader.get("/entity-types/lead")).status_code == 200
        hidden = await lead_reader.get("/entity-types/company")
        unknown = await lead_reader.get("/entity-types/nope")
        assert (hidden.status_code, unknown.status_code) == (404, 404)
        assert hidden.json()["detail"] == unknown.json()["detail"].replace("nope", "company")
        assert (await lead_reader.get(f"/entity-types/{world['company']['id']}")).status_code == 404

    async def test_fields_pipelines_and_stages(self, lead_reader: httpx.AsyncClient, world: dict[str, Any]) -> None:
        assert [f["code"] for f in (await lead_reader.get("/entity-types/lead/fields")).json()["items"]] == ["note"]
        assert (await lead_reader.get("/entity-types/lead/fields/secret")).status_code == 404
        assert (await lead_reader.get("/entity-types/company/fields")).status_code == 404
        assert (await lead_reader.get("/entity-types/company/fields/note")).status_code == 404
        assert (await lead_reader.get("/entity-types/lead/pipelines")).status_code == 200
        assert (await lead_reader.get("/entity-types/company/pipelines")).status_code == 404
        company_pipeline = world["company_pipeline"]["id"]
        assert (await lead_reader.get(f"/pipelines/{company_pipeline}")).status_code == 404
        assert (await lead_reader.get(f"/pipelines/{company_pipeline}/stages")).status_code == 404
        assert (await lead_reader.get(f"/pipelines/{world['lead_pipeline']['id']}/stages")).status_code == 200

    async def test_rules_models_policies_and_relations(
        self, lead_reader: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        for path, kind in (
            ("/automation/rules", "rule"),
            ("/scoring/models", "model"),
            ("/routing/policies", "policy"),
        ):
            listed = (await lead_reader.get(path)).json()
            items = listed["items"] if isinstance(listed, dict) else listed
            assert [i["id"] for i in items] == [world[f"lead_{kind}"]["id"]], path
            assert (await lead_reader.get(f"{path}/{world[f'lead_{kind}']['id']}")).status_code == 200
            assert (await lead_reader.get(f"{path}/{world[f'company_{kind}']['id']}")).status_code == 404
            assert (await lead_reader.get(path, params={"entity_type": "company"})).status_code == 404
        # company -> lead: the role may not see one of its types
        assert (await lead_reader.get("/relations")).json()["items"] == []

    async def test_a_role_that_configures_sees_every_type(
        self, app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        key = await key_for(client, "Configurator", level="editor")
        async with make_client(app, key) as configurator:
            codes = [t["code"] for t in (await configurator.get("/entity-types")).json()["items"]]
            assert codes == ["lead", "company"]
            fields = (await configurator.get("/entity-types/lead/fields")).json()["items"]
            assert [f["code"] for f in fields] == ["note", "secret"]
            assert len((await configurator.get("/automation/rules")).json()["items"]) == 2

    async def test_the_graphql_schema_has_every_type_whoever_builds_it(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        """The typed schema is one per workspace: the first request, by a role that sees no type, builds it."""
        key = await key_for(client, "Nobody")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            nobody = await http.post("/graphql", json={"query": "{ entityTypes { code } }"}, headers=headers)
            assert nobody.json() == {"data": {"entityTypes": []}}
            admin = await http.post(
                "/graphql",
                json={"query": "{ leads { totalCount } companies { totalCount } }"},
                headers={"Authorization": f"Bearer {tenant.admin_key}"},
            )
        assert admin.json() == {"data": {"leads": {"totalCount": 0}, "companies": {"totalCount": 0}}}


class TestLogs:
    async def test_runs_and_webhooks_only_for_the_built_in_roles(
        self, app: FastAPI, client: httpx.AsyncClient, lead_reader: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        hook = created(await client.post("/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]}))
        for path in ("/automation/runs", "/webhooks"):
            refused = await lead_reader.get(path)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
        assert (await lead_reader.get(f"/webhooks/{hook['id']}")).status_code == 404
        assert (await lead_reader.get(f"/webhooks/{hook['id']}/deliveries")).status_code == 404
        viewer = str(created(await client.post("/api-keys", json={"name": "v", "role": "viewer"}))["api_key"])
        async with make_client(app, viewer) as builtin_viewer:
            assert (await builtin_viewer.get("/automation/runs")).status_code == 200
            assert [w["id"] for w in (await builtin_viewer.get("/webhooks")).json()["items"]] == [hook["id"]]


class TestTasksAndNotifications:
    async def test_a_key_sees_the_tasks_of_the_elements_it_may_read(
        self, app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        key = await key_for(
            client, "Own leads", level="editor", grants=[{"entity_type": "lead", "read": "own", "add": "all"}]
        )
        async with make_client(app, key) as own:
            mine = await create_element(own, "lead", title="mine")
            theirs = await create_element(client, "lead", title="theirs")
            on_mine = created(await client.post("/tasks", json={"title": "call mine", "element_id": mine["id"]}))
            on_theirs = created(await client.post("/tasks", json={"title": "call theirs", "element_id": theirs["id"]}))
            loose = created(await client.post("/tasks", json={"title": "no element"}))
            assert [t["id"] for t in (await own.get("/tasks")).json()["items"]] == [on_mine["id"]]
            assert (await own.get("/tasks", params={"element_id": theirs["id"]})).json()["items"] == []
            for task in (on_theirs, loose):
                assert (await own.get(f"/tasks/{task['id']}")).status_code == 404
                assert (await own.patch(f"/tasks/{task['id']}", json={"status": "done"})).status_code == 404
                assert (await own.delete(f"/tasks/{task['id']}")).status_code == 404
            assert (await own.patch(f"/tasks/{on_mine['id']}", json={"status": "done"})).status_code == 200
        statuses = {t["id"]: t["status"] for t in (await client.get("/tasks")).json()["items"]}
        assert statuses == {on_mine["id"]: "done", on_theirs["id"]: "open", loose["id"]: "open"}

    async def test_a_person_sees_their_own_tasks_and_notifications(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, world: dict[str, Any]
    ) -> None:
        """Through the service with a person's actor (people log in through the auth endpoints)."""
        role = created(await client.post("/roles", json={"name": "Nothing"}))
        ann = await create_user(client, "Ann", role_ids=[role["id"]])
        bob = await create_user(client, "Bob")
        theirs = await create_element(client, "lead", title="theirs")
        for_ann = created(await client.post("/tasks", json={"title": "ann's", "assignee_id": ann["id"]}))
        created(await client.post("/tasks", json={"title": "bob's", "assignee_id": bob["id"]}))
        created(await client.post("/tasks", json={"title": "lead's", "element_id": theirs["id"]}))
        async with unit_of_work(app.state.sessionmaker) as session:
            admin = Actor(tenant.workspace_id, Role.admin)
            await task_service.notify(session, admin, user_id=uuid.UUID(ann["id"]), message="for ann")
            await task_service.notify(session, admin, user_id=uuid.UUID(bob["id"]), message="for bob")
        async with unit_of_work(app.state.sessionmaker) as session:
            snapshot = await load_snapshot(await session_connection(session), tenant.workspace_id)
            access = snapshot.for_user(uuid.UUID(ann["id"]))
            assert access is not None
            person = Actor(tenant.workspace_id, access.level, user_id=uuid.UUID(ann["id"]), access=access)
            tasks = await task_service.list_tasks(session, person)
            notifications = await task_service.list_notifications(session, person)
            of_bob = await task_service.list_notifications(session, person, user_id=uuid.UUID(bob["id"]))
        assert [t.id for t in tasks.items] == [uuid.UUID(for_ann["id"])]
        assert [n.message for n in notifications.items] == ["for ann"]
        assert of_bob.items == []
        everyone = (await client.get("/notifications")).json()["items"]
        assert sorted(n["message"] for n in everyone) == ["for ann", "for bob"]
