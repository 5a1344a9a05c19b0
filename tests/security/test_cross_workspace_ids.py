"""Issue 11, item 6: every id that arrives in a body is checked against the caller's workspace: another
workspace's user, stage, pipeline or entity type is a 422 naming the field, and nothing is written."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest

from app.auth.actor import system_actor
from app.db import unit_of_work
from app.errors import Invalid
from app.tasks import service as task_service
from tests.automation.test_rules_api import rule_body
from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_user, default_pipeline, lead_type
from tests.graphql.conftest import http_client


@pytest.fixture
async def foreign(other_client: httpx.AsyncClient) -> dict[str, Any]:
    """Ids of another workspace: a user, a type, its pipeline and a stage."""
    entity_type = await lead_type(other_client)
    pipeline = await default_pipeline(other_client, "lead")
    user = await create_user(other_client, "Stranger")
    return {
        "user": user["id"],
        "type": entity_type["id"],
        "pipeline": pipeline["id"],
        "stage": pipeline["stages"][1]["id"],
    }


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"] for e in response.json()["errors"]}


class TestTasks:
    async def test_an_assignee_of_another_workspace_is_refused(
        self, client: httpx.AsyncClient, foreign: dict[str, Any]
    ) -> None:
        assert fields_of(await client.post("/tasks", json={"title": "x", "assignee_id": foreign["user"]})) == {
            "assignee_id"
        }
        assert (await client.get("/tasks")).json()["items"] == []
        mine = await create_user(client, "Mine")
        task = (await client.post("/tasks", json={"title": "x", "assignee_id": mine["id"]})).json()
        assert task["assignee_id"] == mine["id"]
        assert fields_of(await client.patch(f"/tasks/{task['id']}", json={"assignee_id": foreign["user"]})) == {
            "assignee_id"
        }
        assert (await client.get(f"/tasks/{task['id']}")).json()["assignee_id"] == mine["id"]
        assert (await client.patch(f"/tasks/{task['id']}", json={"assignee_id": None})).status_code == 200

    async def test_graphql_too(self, app: FastAPI, tenant: Tenant, foreign: dict[str, Any]) -> None:
        mutation = GraphQLRequest(
            "mutation($input: TaskCreateInput!) { createTask(input: $input) {"
            " __typename ... on ValidationError { fields { field } } } }",
            variable_values={"input": {"title": "x", "assigneeId": foreign["user"]}},
        )
        async with http_client(app, tenant.admin_key) as gql:
            result = (await gql.execute(mutation))["createTask"]
        assert result == {"__typename": "ValidationError", "fields": [{"field": "assignee_id"}]}


async def test_a_notification_for_a_user_of_another_workspace_is_refused(
    app: FastAPI, tenant: Tenant, foreign: dict[str, Any]
) -> None:
    """What a `notify` action with a templated `user_id` reaches at run time."""
    async with unit_of_work(app.state.sessionmaker) as session:
        with pytest.raises(Invalid) as refused:
            await task_service.notify(session, system_actor(tenant.workspace_id), user_id=foreign["user"], message="hi")
    assert [e.field for e in refused.value.errors] == ["user_id"]


class TestRuleIds:
    @pytest.mark.parametrize(
        ("action", "field"),
        [
            ({"type": "notify", "params": {"user_id": "{user}", "message": "hi"}}, "user_id"),
            ({"type": "create_task", "params": {"title": "t", "assignee_id": "{user}"}}, "assignee_id"),
            ({"type": "set_fields", "params": {"assigned_to": "{user}"}}, "assigned_to"),
            ({"type": "assign", "params": {"user_id": "{user}"}}, "user_id"),
            ({"type": "move_to_stage", "params": {"stage_id": "{stage}"}}, "stage_id"),
            ({"type": "move_to_pipeline", "params": {"pipeline_id": "{pipeline}"}}, "pipeline_id"),
            ({"type": "create_linked_element", "params": {"entity_type": "{type}"}}, "entity_type"),
        ],
    )
    async def test_an_action_naming_another_workspaces_id_is_refused(
        self, client: httpx.AsyncClient, foreign: dict[str, Any], action: dict[str, Any], field: str
    ) -> None:
        await lead_type(client)
        params = {k: v.format(**foreign) if isinstance(v, str) else v for k, v in action["params"].items()}
        body = rule_body(actions=[{"type": action["type"], "params": params}])
        assert fields_of(await client.post("/automation/rules", json=body)) == {f"actions[0].params.{field}"}
        rule = (await client.post("/automation/rules", json=rule_body())).json()
        updated = await client.patch(f"/automation/rules/{rule['id']}", json={"actions": body["actions"]})
        assert fields_of(updated) == {f"actions[0].params.{field}"}
        assert (await client.get("/automation/rules")).json()["items"] == [rule]

    async def test_a_pipeline_of_the_type_with_a_stage_of_another(
        self, client: httpx.AsyncClient, foreign: dict[str, Any]
    ) -> None:
        await lead_type(client)
        mine = await default_pipeline(client, "lead")
        action = {"type": "move_to_pipeline", "params": {"pipeline_id": mine["id"], "stage_id": foreign["stage"]}}
        response = await client.post("/automation/rules", json=rule_body(actions=[action]))
        assert fields_of(response) == {"actions[0].params.stage_id"}

    async def test_a_from_stage_of_another_workspace_is_refused(
        self, client: httpx.AsyncClient, foreign: dict[str, Any]
    ) -> None:
        await lead_type(client)
        mine = await default_pipeline(client, "lead")
        body = rule_body(
            stage_id=mine["stages"][1]["id"],
            trigger={"type": "element.entered_stage", "from_stage_id": foreign["stage"]},
        )
        assert fields_of(await client.post("/automation/rules", json=body)) == {"trigger.from_stage_id"}
        body["trigger"]["from_stage_id"] = mine["stages"][0]["id"]
        assert (await client.post("/automation/rules", json=body)).status_code == 201


class TestUserFieldValues:
    async def test_a_user_value_of_another_workspace_is_refused(
        self, client: httpx.AsyncClient, foreign: dict[str, Any]
    ) -> None:
        await lead_type(client)
        await create_field(client, "lead", "owner", "user")
        created = await client.post("/entity-types/lead/elements", json={"values": {"owner": foreign["user"]}})
        assert fields_of(created) == {"values.owner"}
        mine = await create_user(client, "Mine")
        element = await create_element(client, "lead", values={"owner": mine["id"]})
        patched = await client.patch(f"/elements/{element['id']}", json={"values": {"owner": foreign["user"]}})
        assert fields_of(patched) == {"values.owner"}
        batch = await client.post(
            "/entity-types/lead/elements/batch",
            json={"items": [{"op": "create", "data": {"values": {"owner": foreign["user"]}}}]},
        )
        assert fields_of(batch) == {"items[0].values.owner"}
        items = (await client.get("/entity-types/lead/elements")).json()["items"]
        assert [(e["id"], e["values"]["owner"]) for e in items] == [(element["id"], mine["id"])]
