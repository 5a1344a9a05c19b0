"""Activities and the element's feed through GraphQL: the generic schema, and the typed one per workspace."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from tests.conftest import QueryCounter, Tenant
from tests.factories import create_element, create_user
from tests.graphql.conftest import Run, http_client

ACTIVITY = """
fragment A on Activity {
  id kind direction subject startsAt endsAt durationSeconds status completedAt outcome elementIds payload runId
  responsible { name }
  participants { userId name phone email user { name } }
}
"""
LOG = (
    ACTIVITY
    + """
mutation Log($input: ActivityCreateInput!) {
  logActivity(input: $input) {
    __typename
    ... on Activity { ...A }
    ... on ValidationError { fields { field message } }
    ... on NotFound { message }
    ... on Forbidden { message }
  }
}
"""
)


async def log(run: Run, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await run(LOG, input=input))["logActivity"]
    return result


async def test_log_read_update_complete_and_delete(run: Run, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
    ann = await create_user(client, "Ann")
    call = await log(
        run,
        kind="call",
        status="planned",
        direction="outgoing",
        subject="Intro",
        startsAt="2026-12-01T10:00:00Z",
        responsibleUserId=ann["id"],
        participants=[{"userId": ann["id"]}, {"name": "Bob", "email": "bob@example.com"}],
        payload={"provider": "voip"},
        elementIds=[lead["id"]],
    )
    assert call["__typename"] == "Activity", call
    assert (call["kind"], call["status"], call["responsible"]) == ("call", "planned", {"name": "Ann"})
    assert call["participants"][0]["user"] == {"name": "Ann"}
    assert call["participants"][1] == {
        "userId": None,
        "name": "Bob",
        "phone": None,
        "email": "bob@example.com",
        "user": None,
    }
    assert call["payload"] == {"provider": "voip"}

    read = await run(ACTIVITY + "query($id: UUID!) { activity(id: $id) { ...A } }", id=call["id"])
    assert read["activity"] == {k: v for k, v in call.items() if k != "__typename"}

    updated = await run(
        ACTIVITY
        + """mutation($id: UUID!) { updateActivity(id: $id, input: {subject: "Intro, moved", durationSeconds: 120}) {
             __typename ... on Activity { ...A } } }""",
        id=call["id"],
    )
    assert (updated["updateActivity"]["subject"], updated["updateActivity"]["endsAt"]) == (
        "Intro, moved",
        "2026-12-01T10:02:00+00:00",
    )
    completed = await run(
        ACTIVITY
        + """mutation($id: UUID!) { completeActivity(id: $id, input: {outcome: no_answer}) {
             __typename ... on Activity { ...A } ... on Conflict { code } } }""",
        id=call["id"],
    )
    assert (completed["completeActivity"]["status"], completed["completeActivity"]["outcome"]) == (
        "completed",
        "no_answer",
    )
    again = await run(
        "mutation($id: UUID!) { completeActivity(id: $id) { __typename ... on Conflict { code } } }", id=call["id"]
    )
    assert again["completeActivity"] == {"__typename": "Conflict", "code": "conflict"}

    listed = await run(
        "query($e: UUID) { activities(elementId: $e, kinds: [call], status: completed, first: 5) { nodes { id } "
        "pageInfo { hasNextPage endCursor } } }",
        e=lead["id"],
    )
    assert listed["activities"] == {
        "nodes": [{"id": call["id"]}],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }

    deleted = await run(
        "mutation($id: UUID!) { deleteActivity(id: $id) { __typename ... on Deleted { ref } } }", id=call["id"]
    )
    assert deleted["deleteActivity"] == {"__typename": "Deleted", "ref": call["id"]}
    with pytest.raises(TransportQueryError) as missing:
        await run("query($id: UUID!) { activity(id: $id) { id } }", id=call["id"])
    assert missing.value.errors is not None
    assert missing.value.errors[0]["extensions"]["code"] == "not-found"


async def test_refusals_are_errors_as_data(run: Run, lead: dict[str, Any]) -> None:
    outcome = await log(run, kind="meeting", outcome="answered", elementIds=[lead["id"]])
    assert outcome["__typename"] == "ValidationError"
    assert [f["field"] for f in outcome["fields"]] == ["outcome"]
    too_many = await log(run, kind="call", elementIds=[str(uuid.uuid4()) for _ in range(51)])
    assert too_many["__typename"] == "ValidationError"
    assert [f["field"] for f in too_many["fields"]] == ["element_ids"]
    long_subject = await log(run, kind="call", subject="x" * 501, elementIds=[lead["id"]])
    assert [f["field"] for f in long_subject["fields"]] == ["subject"]
    unknown = await log(run, kind="call", elementIds=[str(uuid.uuid4())])
    assert unknown["__typename"] == "NotFound"
    with pytest.raises(TransportQueryError):  # not an ActivityKind: GraphQL itself refuses it
        await log(run, kind="fax", elementIds=[lead["id"]])


async def test_a_viewer_cannot_log(app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
    key = (await client.post("/api-keys", json={"name": "viewer", "role": "viewer"})).json()["api_key"]
    async with http_client(app, key) as session:
        answer = await session.execute(
            GraphQLRequest(LOG, variable_values={"input": {"kind": "call", "elementIds": [lead["id"]]}})
        )
    assert answer["logActivity"]["__typename"] == "Forbidden"


FEED = """
query($id: UUID!, $kinds: [String!], $after: String) {
  element(id: $id) {
    timeline(kinds: $kinds, first: 2, after: $after) {
      nodes { type kind at entry { kind data } activity { subject outcome } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def test_the_feed_on_the_generic_and_the_typed_element(
    run: Run, client: httpx.AsyncClient, lead: dict[str, Any]
) -> None:
    assert (await client.post(f"/elements/{lead['id']}/move", json={"stage_code": "IN_PROGRESS"})).status_code == 200
    await log(run, kind="call", subject="Demo booked", outcome="answered", elementIds=[lead["id"]])

    first = (await run(FEED, id=lead["id"]))["element"]["timeline"]
    assert [n["kind"] for n in first["nodes"]] == ["call", "moved"]
    assert first["nodes"][0]["activity"] == {"subject": "Demo booked", "outcome": "answered"}
    assert first["nodes"][1]["entry"]["data"]["to_stage_code"] == "IN_PROGRESS"
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await run(FEED, id=lead["id"], after=first["pageInfo"]["endCursor"]))["element"]["timeline"]
    assert [n["kind"] for n in rest["nodes"]] == ["created"]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    calls = (await run(FEED, id=lead["id"], kinds=["call"]))["element"]["timeline"]
    assert [n["type"] for n in calls["nodes"]] == ["activity"]

    typed = await run(
        'query($id: UUID!) { lead(id: $id) { title timeline(kinds: ["call", "moved"]) { nodes { kind } } } }',
        id=lead["id"],
    )
    assert typed["lead"] == {"title": "ACME", "timeline": {"nodes": [{"kind": "call"}, {"kind": "moved"}]}}


async def test_a_page_of_elements_gets_each_its_own_feed(
    run: Run, client: httpx.AsyncClient, lead: dict[str, Any]
) -> None:
    other = await create_element(client, "lead", title="Globex")
    await log(run, kind="call", subject="ACME call", elementIds=[lead["id"]])
    await log(run, kind="email", subject="Globex mail", elementIds=[other["id"]])
    await log(run, kind="meeting", subject="Both", elementIds=[lead["id"], other["id"]])
    page = await run(
        'query { leads(sort: "title") { edges { node { title timeline(kinds: ["call", "email", "meeting"]) '
        "{ nodes { activity { subject } } } } } } }"
    )
    feeds = {
        e["node"]["title"]: sorted(n["activity"]["subject"] for n in e["node"]["timeline"]["nodes"])
        for e in page["leads"]["edges"]
    }
    assert feeds == {"ACME": ["ACME call", "Both"], "Globex": ["Both", "Globex mail"]}


async def test_another_workspace_sees_none_of_it(
    app: FastAPI, run: Run, lead: dict[str, Any], other_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    call = await log(run, kind="call", elementIds=[lead["id"]])
    other_key = other_client.headers["Authorization"].removeprefix("Bearer ")
    async with http_client(app, other_key) as session:
        with pytest.raises(TransportQueryError):
            await session.execute(
                GraphQLRequest("query($id: UUID!) { activity(id: $id) { id } }", variable_values={"id": call["id"]})
            )
        listed = await session.execute(GraphQLRequest("{ activities { nodes { id } } }"))
        assert listed["activities"]["nodes"] == []
        logged = await session.execute(
            GraphQLRequest(LOG, variable_values={"input": {"kind": "call", "elementIds": [lead["id"]]}})
        )
        assert logged["logActivity"]["__typename"] == "NotFound"
        deleted = await session.execute(
            GraphQLRequest(
                "mutation($id: UUID!) { deleteActivity(id: $id) { __typename } }", variable_values={"id": call["id"]}
            )
        )
        assert deleted["deleteActivity"]["__typename"] == "NotFound"


async def test_the_feeds_of_a_page_cost_a_constant_number_of_queries(
    run: Run, client: httpx.AsyncClient, lead: dict[str, Any], count_queries: Callable[[], QueryCounter]
) -> None:
    batch = await client.post(
        "/entity-types/lead/elements/batch",
        json={"items": [{"op": "create", "data": {"title": f"L{i:02}"}} for i in range(29)]},
    )
    assert batch.status_code == 200, batch.text
    ids = [lead["id"], *(e["id"] for e in batch.json()["items"])]
    await log(run, kind="meeting", subject="All hands", elementIds=ids)
    for element_id in ids[:10]:
        await log(run, kind="call", subject=f"Call {element_id}", elementIds=[element_id])
    query = (
        "query($n: Int!) { leads(first: $n) { edges { node { "
        "timeline(first: 3) { nodes { kind activity { subject } } } } } } }"
    )
    await run(query, n=1)  # the workspace's typed schema, built once
    small = count_queries()
    await run(query, n=5)
    small_statements = list(small.statements)
    large = count_queries()
    page = await run(query, n=30)
    assert len(page["leads"]["edges"]) == 30
    assert (
        sum(len(e["node"]["timeline"]["nodes"]) for e in page["leads"]["edges"]) == 30 + 30 + 10
    )  # created, the meeting, the calls
    assert len(large.statements) == len(small_statements), "\n".join(["", *small_statements, "--", *large.statements])
