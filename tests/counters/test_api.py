"""Who sees which counters, through REST and GraphQL; the repair (endpoint, mutation, CLI)."""

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from typer.testing import CliRunner

from app.access.schemas import RoleCreate
from app.access.service import create_role
from app.auth.actor import Actor
from app.auth.models import Role
from app.cli import cli
from app.db import unit_of_work
from app.settings import get_settings
from tests.conftest import Tenant, make_client, make_tenant
from tests.counters.conftest import Crm, add_person, person_token
from tests.graphql.conftest import http_client

MY_COUNTERS = """
{ myCounters { userId otherOverdueTasks
  types { entityType title newElements overdueElements overdueTasks }
  total { newElements overdueElements overdueTasks } } }
"""


async def test_an_api_key_has_no_counters(crm: Crm, viewer_client: httpx.AsyncClient) -> None:
    for http in (crm.client, viewer_client):
        response = await http.get("/me/counters")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "person" in response.json()["detail"]
    async with http_client(crm.app, crm.tenant.admin_key) as session:
        with pytest.raises(TransportQueryError) as refused:
            await session.execute(GraphQLRequest(MY_COUNTERS))
    assert refused.value.errors
    assert refused.value.errors[0]["extensions"]["code"] == "forbidden"


async def test_unauthenticated_is_401(app: FastAPI) -> None:
    async with make_client(app, None) as http:
        response = await http.get("/me/counters")
    assert response.status_code == 401


async def test_each_person_sees_only_their_own(crm: Crm) -> None:
    await crm.element(crm.ann)
    for _ in range(3):
        await crm.element(crm.bob)
    ann, bob = await crm.counters(crm.ann), await crm.counters(crm.bob)
    assert (ann["user_id"], ann["total"]["new_elements"]) == (crm.ann, 1)
    assert (bob["user_id"], bob["total"]["new_elements"]) == (crm.bob, 3)
    assert ann["types"] == [
        {
            "entity_type_id": crm.type_id,
            "entity_type": "lead",
            "title": "Lead",
            "new_elements": 1,
            "overdue_elements": 0,
            "overdue_tasks": 0,
        }
    ]


async def test_another_workspace_sees_nothing_of_this_one(crm: Crm, app: FastAPI) -> None:
    await crm.element(crm.ann)
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as other_admin:
        carol = await add_person(app, other, other_admin, "carol")
        # Another workspace's user id is not a user here.
        response = await other_admin.post("/counters/recount", params={"user_id": crm.ann})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    async with make_client(app, person_token(other, carol["id"])) as http:
        body = (await http.get("/me/counters")).json()
    assert body == {
        "user_id": carol["id"],
        "types": [],
        "other_overdue_tasks": 0,
        "total": {"new_elements": 0, "overdue_elements": 0, "overdue_tasks": 0},
    }
    # A token naming ann in the other workspace is no one there.
    async with make_client(app, person_token(other, crm.ann)) as http:
        assert (await http.get("/me/counters")).status_code == 401


async def make_role(app: FastAPI, tenant: Tenant, **body: Any) -> str:
    async with unit_of_work(app.state.sessionmaker) as session:
        role = await create_role(session, Actor(tenant.workspace_id, Role.admin), RoleCreate.model_validate(body))
    return str(role.id)


async def test_types_the_person_may_not_read_are_left_out(crm: Crm, app: FastAPI) -> None:
    await crm.client.post("/entity-types", json={"code": "deal", "title": "Deal"})
    await make_role(
        app, crm.tenant, name="deals only", grants=[{"entity_type": "deal", "read": "own", "update": "own"}]
    )
    dave = await add_person(app, crm.tenant, crm.client, "dave", role="deals only")
    lead = await crm.element(dave["id"])
    deal = (await crm.client.post("/entity-types/deal/elements", json={"assigned_to": dave["id"]})).json()
    for element_id in (lead["id"], deal["id"]):
        response = await crm.client.post(
            "/tasks", json={"title": "t", "element_id": element_id, "assignee_id": dave["id"], "due_at": "2020-01-01"}
        )
        assert response.status_code == 201, response.text
    body = await crm.counters(dave["id"])
    assert [(t["entity_type"], t["new_elements"], t["overdue_tasks"]) for t in body["types"]] == [("deal", 1, 1)]
    assert body["other_overdue_tasks"] == 1  # their own task about a lead they may not read
    assert body["total"] == {"new_elements": 1, "overdue_elements": 0, "overdue_tasks": 2}

    nobody = await add_person(app, crm.tenant, crm.client, "nobody", role=None)
    assert (await crm.counters(nobody["id"]))["types"] == []


async def test_my_counters_in_graphql(crm: Crm) -> None:
    await crm.element(crm.ann)
    await crm.set_limit("NEW", 1)
    await crm.fire(2)
    async with http_client(crm.app, person_token(crm.tenant, crm.ann)) as session:
        data = await session.execute(GraphQLRequest(MY_COUNTERS))
    assert data["myCounters"] == {
        "userId": crm.ann,
        "otherOverdueTasks": 0,
        "types": [{"entityType": "lead", "title": "Lead", "newElements": 1, "overdueElements": 1, "overdueTasks": 0}],
        "total": {"newElements": 1, "overdueElements": 1, "overdueTasks": 0},
    }


class TestRecount:
    async def test_repairs_what_drifted_and_lists_it(self, crm: Crm) -> None:
        await crm.element(crm.ann)
        await crm.element(crm.bob)
        response = await crm.client.post("/counters/recount")
        assert response.status_code == 200, response.text
        assert response.json() == {"user_id": None, "drift": [], "drift_count": 0}

        # Damage ann's counters behind the triggers' back.
        await crm.sql(
            "UPDATE user_counters SET new_elements = new_elements + 7, overdue_tasks = 2 WHERE user_id = :u",
            u=crm.ann,
        )
        assert (await crm.of(crm.ann))[0] > 1
        response = await crm.client.post("/counters/recount", params={"user_id": crm.ann})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["drift_count"] == 1
        drift = body["drift"][0]
        assert (drift["user_id"], drift["entity_type_id"]) == (crm.ann, crm.type_id)
        assert drift["recounted"] == {"new_elements": 1, "overdue_elements": 0, "overdue_tasks": 0}
        assert drift["stored"]["new_elements"] > 1
        assert await crm.of(crm.ann) == (1, 0, 0)
        assert await crm.of(crm.bob) == (1, 0, 0)
        await crm.check_consistent()

    async def test_admins_only(self, crm: Crm, viewer_client: httpx.AsyncClient, app: FastAPI) -> None:
        editor_key = (await crm.client.post("/api-keys", json={"name": "ed", "role": "editor"})).json()["api_key"]
        async with make_client(app, editor_key) as editor:
            assert (await editor.post("/counters/recount")).status_code == 403
        assert (await viewer_client.post("/counters/recount")).status_code == 403
        async with crm.person(crm.ann) as ann:  # an editor person
            response = await ann.post("/counters/recount")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        response = await crm.client.post("/counters/recount", params={"user_id": "not-a-uuid"})
        assert response.status_code == 422

    async def test_in_graphql(self, crm: Crm) -> None:
        await crm.element(crm.ann)
        await crm.sql("UPDATE user_counters SET new_elements = 0 WHERE user_id = :u", u=crm.ann)
        query = (
            "mutation($u: UUID) { recountCounters(userId: $u) { __typename "
            "... on RecountResult { driftCount drift { userId stored { newElements } recounted { newElements } } } "
            "... on Forbidden { message } } }"
        )
        async with http_client(crm.app, crm.tenant.admin_key) as session:
            data = await session.execute(GraphQLRequest(query, variable_values={"u": crm.ann}))
        assert data["recountCounters"] == {
            "__typename": "RecountResult",
            "driftCount": 1,
            "drift": [{"userId": crm.ann, "stored": {"newElements": 0}, "recounted": {"newElements": 1}}],
        }
        async with http_client(crm.app, person_token(crm.tenant, crm.bob)) as session:
            data = await session.execute(GraphQLRequest(query, variable_values={"u": None}))
        assert data["recountCounters"]["__typename"] == "Forbidden"


def test_cli_recount(crm_with_drift: tuple[Tenant, str], database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, ann = crm_with_drift
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        args = ["recount-counters", "--workspace", str(tenant.workspace_id)]
        first = CliRunner().invoke(cli, args)
        again = CliRunner().invoke(cli, [*args, "--user", ann])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"workspace_id": str(tenant.workspace_id), "drift_count": 1}
    assert json.loads(again.output)["drift_count"] == 0


@pytest.fixture
async def crm_with_drift(crm: Crm) -> tuple[Tenant, str]:
    await crm.element(crm.ann)
    await crm.sql("UPDATE user_counters SET new_elements = 5 WHERE user_id = :u", u=crm.ann)
    return crm.tenant, crm.ann
