"""The same reports, dashboards and alerts through GraphQL (same services, same numbers as REST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.analytics.conftest import Deals, generate, seed

TODAY = datetime.now(UTC).date()


async def graphql(deals: Deals, query: str, **variables: Any) -> dict[str, Any]:
    response = await deals.client.post("http://testserver/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_funnel_money_and_time_in_stage_match_rest(deals: Deals) -> None:
    await seed(
        deals,
        generate(deals.users, seed=7, count=60, first_day=TODAY - timedelta(days=20), days=15),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    start = (TODAY - timedelta(days=20)).isoformat()
    body = await graphql(
        deals,
        """query($p: UUID, $from: Date) {
          analyticsFunnel(entityType: "deal", pipelineId: $p, from: $from, groupBy: week) {
            computedFrom groups { key won stages { code entered conversionToNext } } }
          analyticsTimeInStage(entityType: "deal", pipelineId: $p, from: $from) {
            groups { stages { code count p50Seconds } } }
          analyticsMoney(entityType: "deal", pipelineId: $p, from: $from, probability: "stage") {
            wonAmount weightedPipeline forecast { forecast } }
        }""",
        p=deals.pipeline_id,
        **{"from": start},
    )
    assert "errors" not in body, body
    rest = (
        await deals.client.get(
            "/analytics/funnel",
            params={"entity_type": "deal", "pipeline_id": deals.pipeline_id, "from": start, "group_by": "week"},
        )
    ).json()
    funnel = body["data"]["analyticsFunnel"]
    assert funnel["computedFrom"] == "rollups"
    assert [g["won"] for g in funnel["groups"]] == [g["won"] for g in rest["groups"]]
    assert sum(g["won"] for g in funnel["groups"]) > 0
    money = (
        await deals.client.get(
            "/analytics/money",
            params={"entity_type": "deal", "pipeline_id": deals.pipeline_id, "from": start, "probability": "stage"},
        )
    ).json()
    assert body["data"]["analyticsMoney"]["weightedPipeline"] == money["weighted_pipeline"]
    assert body["data"]["analyticsTimeInStage"]["groups"][0]["stages"][0]["count"] > 0


async def test_alerts_round_trip_and_refusals_are_data(deals: Deals) -> None:
    created = await graphql(
        deals,
        """mutation($input: AlertCreateInput!) { createAlert(input: $input) {
            __typename ... on Alert { id state metric condition } ... on ValidationError { fields { field } } } }""",
        input={
            "name": "Wins",
            "entityType": "deal",
            "metric": "won_count",
            "condition": {"kind": "threshold", "op": "lt", "value": 1},
        },
    )
    alert = created["data"]["createAlert"]
    assert alert["__typename"] == "Alert"
    assert alert["condition"] == {"kind": "threshold", "op": "lt", "value": 1.0}
    checked = await graphql(
        deals,
        """mutation($id: UUID!) { checkAlert(id: $id) { __typename ... on AlertCheck { breached value
            alert { state } event { kind } } } }""",
        id=alert["id"],
    )
    result = checked["data"]["checkAlert"]
    assert result["value"] == 0
    assert result["breached"] is True
    assert result["alert"]["state"] == "firing"
    assert result["event"]["kind"] == "fired"
    history = await graphql(deals, "query($id: UUID!) { alertEvents(id: $id) { kind value } }", id=alert["id"])
    assert history["data"]["alertEvents"] == [{"kind": "fired", "value": 0.0}]
    refused = await graphql(
        deals,
        """mutation($input: AlertCreateInput!) { createAlert(input: $input) {
            __typename ... on ValidationError { fields { field } } } }""",
        input={"name": "x", "entityType": "deal", "metric": "entered", "condition": {"kind": "nope"}},
    )
    assert refused["data"]["createAlert"]["__typename"] == "ValidationError"
    no_person = await graphql(deals, '{ managerDashboard(entityType: "deal") { userId } }')
    assert no_person["errors"][0]["extensions"]["code"] == "forbidden"
    head = await graphql(deals, '{ headDashboard(entityType: "deal") { team kpis { name current } } }')
    assert head["data"]["headDashboard"]["team"] is None
