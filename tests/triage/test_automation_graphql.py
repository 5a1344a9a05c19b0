"""Triage in automation (a rule on element.created triages, a rule on the urgency escalates) and through GraphQL."""

from typing import Any

import httpx
from fastapi import FastAPI

from app.settings import Settings
from bench.triage_eval import generate
from tests.activities.conftest import handle_events
from tests.conftest import Tenant
from tests.factories import created
from tests.graphql.conftest import Run
from tests.triage.helpers import add_requests, trained_tickets


async def rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(await client.post("/automation/rules", json={"name": "R", "entity_type": "ticket", **body}))


def pick(urgency: str, seed: int) -> dict[str, str]:
    return next(r for r in generate(200, seed, unseen=False, typo_rate=0) if r["urgency"] == urgency)


async def test_new_requests_are_triaged_and_critical_ones_escalated(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await trained_tickets(client, count=240)
    await handle_events(app, settings, tenant.workspace_id)  # the labelled history fires no rule: none exist yet
    await rule(client, trigger={"type": "element.created"}, actions=[{"type": "triage", "params": {"apply": True}}])
    await rule(
        client,
        trigger={"type": "element.updated", "fields": ["urgency"]},
        condition={"field": "urgency", "op": "eq", "value": "critical"},
        actions=[{"type": "create_task", "params": {"title": "Critical: {{ title }}", "due_in_hours": 1}}],
    )
    critical, low = pick("critical", 41), pick("low", 42)
    elements = await add_requests(client, [critical, low], labelled=False, stage=None)
    await handle_events(app, settings, tenant.workspace_id)

    for element, truth in zip(elements, (critical, low), strict=True):
        values = (await client.get(f"/elements/{element['id']}")).json()["values"]
        assert values["category"] == truth["category"]
        assert values["urgency"] == truth["urgency"]
        history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
        assert [e["data"]["urgency"] for e in history if e["kind"] == "triaged"] == [truth["urgency"]]
    tasks = {
        e["id"]: [t["title"] for t in (await client.get("/tasks", params={"element_id": e["id"]})).json()["items"]]
        for e in elements
    }
    assert tasks == {elements[0]["id"]: [f"Critical: {elements[0]['title']}"], elements[1]["id"]: []}


async def test_the_actions_escalate_if_makes_the_task_itself(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await trained_tickets(client, count=240)
    await handle_events(app, settings, tenant.workspace_id)
    params = {"escalate_if": ["critical", "high"], "escalation_title": "Look at {{ title }} now"}
    await rule(client, trigger={"type": "element.created"}, actions=[{"type": "triage", "params": params}])
    high, normal = pick("high", 43), pick("normal", 44)
    elements = await add_requests(client, [high, normal], labelled=False, stage=None)
    await handle_events(app, settings, tenant.workspace_id)
    titles = [
        [t["title"] for t in (await client.get("/tasks", params={"element_id": e["id"]})).json()["items"]]
        for e in elements
    ]
    assert titles == [[f"Look at {elements[0]['title']} now"], []]


async def test_a_rule_with_bad_triage_params_is_refused(client: httpx.AsyncClient) -> None:
    await trained_tickets(client, count=60)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "R",
            "entity_type": "ticket",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "triage", "params": {"similar": 500, "nope": 1}}],
        },
    )
    assert response.status_code == 422, response.text
    assert {"actions[0].params.similar", "actions[0].params.nope"} <= {e["field"] for e in response.json()["errors"]}


TRIAGE = """
mutation T($id: UUID!, $apply: Boolean!) {
  triageElement(elementId: $id, apply: $apply, similar: 2) {
    __typename
    ... on TriageOutcome {
      encoder applied
      category { field value probability probabilities terms { term weight } }
      urgency { value }
      similarSolved { elementId title similarity category }
    }
    ... on NotFound { message }
    ... on Conflict { message }
  }
}
"""


async def test_graphql_configures_trains_and_triages(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, run: Run
) -> None:
    await trained_tickets(client, count=120)
    configured = await run(
        """mutation { setTriageConfig(entityType: "ticket",
             input: {textFields: ["body", "title"], categoryField: "category", urgencyField: "urgency"}) {
           __typename ... on TriageConfig { textFields status } } }"""
    )
    assert configured["setTriageConfig"] == {
        "__typename": "TriageConfig",
        "textFields": ["body", "title"],
        "status": "untrained",
    }
    bad = await run(
        """mutation { setTriageConfig(entityType: "ticket",
             input: {textFields: ["body"], categoryField: "body", urgencyField: "urgency"}) {
           __typename ... on ValidationError { fields { field } } } }"""
    )
    assert bad["setTriageConfig"] == {"__typename": "ValidationError", "fields": [{"field": "category_field"}]}
    await run(
        """mutation { setTriageConfig(entityType: "ticket",
             input: {textFields: ["body"], categoryField: "category", urgencyField: "urgency"}) { __typename } }"""
    )
    trained = await run(
        'mutation { trainTriage(entityType: "ticket", encoder: "tfidf") '
        "{ ... on TriageConfig { status encoder metrics } } }"
    )
    assert trained["trainTriage"]["status"] == "trained"
    # 120 requests leave a hold-out of a few dozen, drawn by the elements' (random) ids: one miss moves the accuracy by
    # several points, so this asks for a clear win over the majority class rather than the REST tests' 0.9 on 240.
    category = trained["trainTriage"]["metrics"]["category"]
    assert category["accuracy"] >= 0.75
    assert category["accuracy"] >= category["baseline_accuracy"] + 0.4
    read = await run('{ triageConfig(entityType: "ticket") { encoder embeddingsAvailable } }')
    assert read["triageConfig"]["encoder"] == "tfidf"

    truth = generate(1, 77, unseen=False)[0]
    element = (await add_requests(client, [truth], labelled=False, stage=None))[0]
    result = (await run(TRIAGE, id=element["id"], apply=True))["triageElement"]
    assert result["__typename"] == "TriageOutcome"
    assert result["category"]["value"] == truth["category"]
    assert result["category"]["field"] == "category"
    assert result["applied"] is True
    assert len(result["similarSolved"]) == 2
    values = (await client.get(f"/elements/{element['id']}")).json()["values"]
    assert values["category"] == truth["category"]
    # Another workspace's element: not found, as data.
    await trained_tickets(other_client, count=60)
    theirs = (await add_requests(other_client, [truth], labelled=False, stage=None))[0]
    assert (await run(TRIAGE, id=theirs["id"], apply=False))["triageElement"]["__typename"] == "NotFound"
    missing = (await run(TRIAGE, id="00000000-0000-0000-0000-000000000001", apply=False))["triageElement"]
    assert missing["__typename"] == "NotFound"
