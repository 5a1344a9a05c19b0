"""Automation rules and runs, tasks and webhook subscriptions through GraphQL: REST's services, errors as data."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from app.automation.models import AutomationRun, RunStatus
from tests.conftest import Tenant
from tests.factories import create_element, create_user, default_pipeline, lead_type
from tests.graphql.conftest import Run, http_client

RULE_FIELDS = "id name entityType pipelineId stageId trigger condition actions enabled sort hookUrl webhookSecrets"
CREATE_RULE = f"""
mutation($input: AutomationRuleCreateInput!) {{
  createAutomationRule(input: $input) {{
    __typename
    ... on AutomationRule {{ {RULE_FIELDS} }}
    ... on Error {{ message code }}
    ... on ValidationError {{ fields {{ field message }} }}
  }}
}}
"""
UPDATE_RULE = """
mutation($id: UUID!, $input: AutomationRuleUpdateInput!) {
  updateAutomationRule(id: $id, input: $input) {
    __typename ... on AutomationRule { name condition enabled } ... on Error { code }
  }
}
"""
TASK_FIELDS = "id title status elementId assigneeId dueAt completedAt assignee { name tier }"


def rule_input(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "R",
        "entityType": "lead",
        "trigger": {"type": "element.updated", "fields": ["budget"]},
        "actions": [{"type": "add_comment", "params": {"text": "hi {{ title }}"}}],
    }
    body.update(overrides)
    return body


class TestRules:
    async def test_create_read_update_enable_reorder_delete(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        pipeline = await default_pipeline(client, "lead")
        stage = pipeline["stages"][1]
        actions = [
            {"type": "create_task", "params": {"title": "Call {{ title }}", "due_in_hours": 4}},
            {"type": "webhook", "params": {"url": "https://example.com/hook"}},
        ]
        created = (
            await run(
                CREATE_RULE,
                input=rule_input(
                    name="Call",
                    stageId=stage["id"],
                    trigger={"type": "element.entered_stage"},
                    condition={"field": "budget", "op": "gte", "value": 100},
                    actions=actions,
                ),
            )
        )["createAutomationRule"]
        assert created["__typename"] == "AutomationRule", created
        assert (created["pipelineId"], created["stageId"]) == (pipeline["id"], stage["id"])
        assert created["trigger"] == {"type": "element.entered_stage"}
        assert created["condition"] == {"field": "budget", "op": "gte", "value": 100}
        assert created["actions"][0] == actions[0]
        # The webhook action's signing secret is returned once, by action index; REST sees the same rule.
        assert created["webhookSecrets"]["1"].startswith("whsec_")
        rest = (await client.get(f"/automation/rules/{created['id']}")).json()
        assert rest["actions"] == created["actions"]
        assert rest["webhook_secrets"] is None
        second = (await run(CREATE_RULE, input=rule_input(name="Second")))["createAutomationRule"]

        listed = await run(
            'query($id: UUID!) { automationRules(entityType: "lead") { name sort } automationRule(id: $id) '
            "{ webhookSecrets name } }",
            id=created["id"],
        )
        assert [r["name"] for r in listed["automationRules"]] == ["Call", "Second"]
        assert listed["automationRule"] == {"webhookSecrets": None, "name": "Call"}

        updated = await run(UPDATE_RULE, id=created["id"], input={"name": "Call them", "condition": None})
        assert updated["updateAutomationRule"] == {
            "__typename": "AutomationRule",
            "name": "Call them",
            "condition": None,
            "enabled": True,
        }
        disabled = await run(
            "mutation($id: UUID!) { disableAutomationRule(id: $id) { ... on AutomationRule { enabled } } }",
            id=created["id"],
        )
        assert disabled["disableAutomationRule"] == {"enabled": False}
        assert (await client.get(f"/automation/rules/{created['id']}")).json()["enabled"] is False
        enabled = await run(
            "mutation($id: UUID!) { enableAutomationRule(id: $id) { ... on AutomationRule { enabled } } }",
            id=created["id"],
        )
        assert enabled["enableAutomationRule"] == {"enabled": True}

        reordered = await run(
            "mutation($ids: [UUID!]!) { reorderAutomationRules(ids: $ids) "
            "{ __typename ... on AutomationRuleList { items { name } } } }",
            ids=[second["id"], created["id"]],
        )
        assert [r["name"] for r in reordered["reorderAutomationRules"]["items"]] == ["Second", "Call them"]

        deleted = await run(
            "mutation($id: UUID!) { deleteAutomationRule(id: $id) { __typename ... on Deleted { ref } } }",
            id=second["id"],
        )
        assert deleted["deleteAutomationRule"] == {"__typename": "Deleted", "ref": second["id"]}
        assert (await client.get(f"/automation/rules/{second['id']}")).status_code == 404
        again = await run(
            "mutation($id: UUID!) { deleteAutomationRule(id: $id) { __typename ... on Error { code } } }",
            id=second["id"],
        )
        assert again["deleteAutomationRule"] == {"__typename": "NotFound", "code": "not-found"}

    async def test_invalid_rules_are_typed_errors_and_nothing_is_written(
        self, client: httpx.AsyncClient, run: Run
    ) -> None:
        await lead_type(client)
        bad = await run(
            CREATE_RULE,
            input=rule_input(
                trigger={"type": "element.entered_stage"},
                actions=[
                    {"type": "move_to_stage", "params": {}},
                    {"type": "webhook", "params": {"url": "not-a-url"}},
                ],
            ),
        )
        error = bad["createAutomationRule"]
        assert error["__typename"] == "ValidationError"
        assert {"stage_id", "actions[0].params", "actions[1].params.url"} <= {f["field"] for f in error["fields"]}
        unknown = await run(CREATE_RULE, input=rule_input(trigger={"type": "nope"}, actions="not a list"))
        assert unknown["createAutomationRule"]["__typename"] == "ValidationError"
        assert {"trigger.type", "actions"} <= {f["field"] for f in unknown["createAutomationRule"]["fields"]}
        assert (await run("{ automationRules { id } }"))["automationRules"] == []
        missing = await run(UPDATE_RULE, id=str(uuid.uuid4()), input={"name": "x"})
        assert missing["updateAutomationRule"] == {"__typename": "NotFound", "code": "not-found"}

    async def test_viewer_cannot_write_rules(
        self, app: FastAPI, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        key = viewer_client.headers["Authorization"].removeprefix("Bearer ")
        async with http_client(app, key) as session:
            result = await session.execute(GraphQLRequest(CREATE_RULE, variable_values={"input": rule_input()}))
        assert result["createAutomationRule"]["__typename"] == "Forbidden"


async def _runs(app: FastAPI, tenant: Tenant, rule_id: str, statuses: list[RunStatus]) -> list[uuid.UUID]:
    """Runs as the workers leave them (the engine itself is tested in tests/automation)."""
    now = datetime.now(UTC)
    ids = []
    async with app.state.sessionmaker() as session:
        for i, status in enumerate(statuses):
            run = AutomationRun(
                workspace_id=tenant.workspace_id,
                rule_id=uuid.UUID(rule_id),
                event_id=uuid.uuid4(),
                event_type="element.updated",
                status=status,
                attempts=5 if status == RunStatus.failed else 1,
                error="boom" if status == RunStatus.failed else None,
                context={},
                created_at=now - timedelta(minutes=i),
            )
            session.add(run)
            await session.flush()
            ids.append(run.id)
        await session.commit()
    return ids


class TestRuns:
    async def test_list_page_and_retry(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        rule = (await run(CREATE_RULE, input=rule_input()))["createAutomationRule"]
        failed, succeeded, failed_too = await _runs(
            app, tenant, rule["id"], [RunStatus.failed, RunStatus.succeeded, RunStatus.failed]
        )
        query = """query($rule: UUID, $status: AutomationRunStatus, $after: String) {
          automationRuns(ruleId: $rule, status: $status, first: 2, after: $after) {
            nodes { id status attempts error ruleId }
            pageInfo { hasNextPage endCursor }
          }
        }"""
        first = (await run(query, rule=rule["id"]))["automationRuns"]
        assert [n["id"] for n in first["nodes"]] == [str(failed), str(succeeded)]  # newest first
        assert first["pageInfo"]["hasNextPage"] is True
        rest = (await run(query, rule=rule["id"], after=first["pageInfo"]["endCursor"]))["automationRuns"]
        assert [n["id"] for n in rest["nodes"]] == [str(failed_too)]
        assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}
        only_failed = (await run(query, status="failed"))["automationRuns"]["nodes"]
        assert {n["id"] for n in only_failed} == {str(failed), str(failed_too)}
        assert only_failed[0]["error"] == "boom"

        retry = """mutation($id: UUID!) { retryAutomationRun(id: $id) {
          __typename ... on AutomationRun { status finishedAt } ... on Error { code message } } }"""
        retried = (await run(retry, id=str(failed)))["retryAutomationRun"]
        assert retried == {"__typename": "AutomationRun", "status": "queued", "finishedAt": None}
        assert (await client.get(f"/automation/runs/{failed}")).json()["status"] == "queued"
        refused = (await run(retry, id=str(succeeded)))["retryAutomationRun"]
        assert (refused["__typename"], refused["code"]) == ("Conflict", "conflict")

        forged = base64.urlsafe_b64encode(b"[1, 2]").decode()
        for bad in (
            "{ automationRuns(first: 501) { nodes { id } } }",
            f'{{ automationRuns(after: "{forged}") {{ nodes {{ id }} }} }}',
        ):
            with pytest.raises(TransportQueryError) as caught:
                await run(bad)
            assert caught.value.errors is not None
            assert caught.value.errors[0]["extensions"]["code"] == "validation-error", caught.value.errors


class TestTasks:
    async def test_create_list_update_with_assignee(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="Acme")
        ann = await create_user(client, "Ann", tier="senior")
        created = await run(
            f"""mutation($input: TaskCreateInput!) {{ createTask(input: $input) {{
              __typename ... on Task {{ {TASK_FIELDS} }} }} }}""",
            input={"title": "Call Acme", "elementId": element["id"], "assigneeId": ann["id"]},
        )
        task = created["createTask"]
        assert (task["__typename"], task["status"], task["assignee"]) == (
            "Task",
            "open",
            {"name": "Ann", "tier": "senior"},
        )
        listed = await run(
            f"query($e: UUID) {{ tasks(elementId: $e, status: open) {{ {TASK_FIELDS} }} }}", e=element["id"]
        )
        assert [t["id"] for t in listed["tasks"]] == [task["id"]]

        done = await run(
            """mutation($id: UUID!) { updateTask(id: $id, input: {status: done}) {
              ... on Task { status completedAt } } }""",
            id=task["id"],
        )
        assert done["updateTask"]["status"] == "done"
        assert done["updateTask"]["completedAt"] is not None
        assert (await run("{ tasks(status: open) { id } }"))["tasks"] == []
        assert (await client.get(f"/tasks/{task['id']}")).json()["status"] == "done"

        bad = await run(
            """mutation($input: TaskCreateInput!) { createTask(input: $input) {
              __typename ... on ValidationError { fields { field } } } }""",
            input={"title": "", "elementId": str(uuid.uuid4())},
        )
        assert bad["createTask"] == {"__typename": "ValidationError", "fields": [{"field": "title"}]}
        orphan = await run(
            """mutation($input: TaskCreateInput!) { createTask(input: $input) {
              __typename ... on ValidationError { fields { field } } } }""",
            input={"title": "x", "elementId": str(uuid.uuid4())},
        )
        assert orphan["createTask"] == {"__typename": "ValidationError", "fields": [{"field": "element_id"}]}


class TestWebhooks:
    async def test_secret_once_list_update_delete(self, client: httpx.AsyncClient, run: Run) -> None:
        created = (
            await run(
                """mutation($input: WebhookCreateInput!) { createWebhook(input: $input) {
                  __typename ... on WebhookSubscriptionCreated { id url events filter secret enabled } } }""",
                input={
                    "url": "https://example.com/in",
                    "events": ["element.moved"],
                    "filter": {"field": "title", "op": "eq", "value": "x"},
                },
            )
        )["createWebhook"]
        assert created["secret"].startswith("whsec_")
        assert created["filter"] == {"field": "title", "op": "eq", "value": "x"}
        listed = await run("{ webhooks { id url events } }")
        assert listed["webhooks"] == [{"id": created["id"], "url": created["url"], "events": ["element.moved"]}]
        # Only the created result carries the secret: the subscription type has no such field.
        with pytest.raises(TransportQueryError):
            await run("{ webhooks { secret } }")

        updated = await run(
            """mutation($id: UUID!) { updateWebhook(id: $id, input: {enabled: false, filter: null}) {
              ... on WebhookSubscription { enabled filter } } }""",
            id=created["id"],
        )
        assert updated["updateWebhook"] == {"enabled": False, "filter": None}
        bad = await run(
            """mutation { createWebhook(input: {url: "ftp://x", events: []}) {
              __typename ... on ValidationError { fields { field } } } }"""
        )
        assert {f["field"] for f in bad["createWebhook"]["fields"]} == {"url", "events"}
        deleted = await run(
            "mutation($id: UUID!) { deleteWebhook(id: $id) { __typename } }",
            id=created["id"],
        )
        assert deleted["deleteWebhook"] == {"__typename": "Deleted"}
        assert (await client.get(f"/webhooks/{created['id']}")).status_code == 404
