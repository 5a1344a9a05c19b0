"""Card layouts through GraphQL: the generic schema (`entityType { layout }`, `element { card }`, the layout
mutations) and the typed one (`dishwasher(id) { card }`)."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from tests.conftest import QueryCounter
from tests.factories import create_field
from tests.graphql.conftest import Run, http_client
from tests.layouts.helpers import client_with_role, layout, role, washers

CREATE = """
mutation($type: String!, $input: CardLayoutInput!) {
  createCardLayout(type: $type, input: $input) {
    __typename
    ... on CardLayout { id name pipelineId sections { code title fields default } hidden }
    ... on ValidationError { fields { field message } }
    ... on Error { code message }
  }
}
"""
TYPE_CARD = """
query($pipeline: UUID) {
  entityType(code: "dishwasher") {
    layout(pipelineId: $pipeline) { layoutId layoutName sections { code title fields { code title type system } } }
  }
}
"""
ELEMENT_CARD = """
query($id: UUID!) {
  element(id: $id) { card { layoutId pipelineId sections { code title fields { code type system value } } } }
}
"""


def codes(card: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(s["code"], [f["code"] for f in s["fields"]]) for s in card["sections"]]


def two_sections(pipeline_id: str | None = None) -> dict[str, Any]:
    return {
        "name": "Pipeline A" if pipeline_id else "Everywhere",
        **({"pipelineId": pipeline_id} if pipeline_id else {}),
        "sections": [
            {"code": "deal", "title": "Deal", "fields": ["title", "amount"]},
            {"code": "tech", "title": "Technical", "fields": ["capacity"], "default": True},
        ],
        "hidden": ["pipeline_id", "stage_id", "assigned_to", "currency", "score", "created_at", "updated_at"],
    }


class TestGeneric:
    async def test_a_layout_per_pipeline_changes_the_cards_sections(self, client: httpx.AsyncClient, run: Run) -> None:
        w = await washers(client)
        made = (await run(CREATE, type="dishwasher", input=two_sections(w.pipeline_a)))["createCardLayout"]
        assert made["__typename"] == "CardLayout", made
        assert made["sections"][1] == {"code": "tech", "title": "Technical", "fields": ["capacity"], "default": True}
        card_a = (await run(TYPE_CARD, pipeline=w.pipeline_a))["entityType"]["layout"]
        assert (card_a["layoutId"], card_a["layoutName"]) == (made["id"], "Pipeline A")
        assert codes(card_a) == [
            ("deal", ["title", "amount"]),
            ("tech", ["capacity", "energy_class", "notes", "moved_at"]),
        ]
        assert card_a["sections"][0]["fields"][0] == {
            "code": "title",
            "title": "Title",
            "type": "string",
            "system": True,
        }
        # The default pipeline: no layout of its own, so the generated card.
        generated = (await run(TYPE_CARD, pipeline=w.pipeline_default))["entityType"]["layout"]
        assert (generated["layoutId"], [s["code"] for s in generated["sections"]]) == (None, ["main"])
        element_a = (await run(ELEMENT_CARD, id=w.in_a["id"]))["element"]["card"]
        assert (element_a["layoutId"], codes(element_a)) == (made["id"], codes(card_a))
        assert element_a["sections"][0]["fields"][1] == {
            "code": "amount",
            "type": "money",
            "system": True,
            "value": 499.9,
        }
        element_default = (await run(ELEMENT_CARD, id=w.in_default["id"]))["element"]["card"]
        assert element_default["layoutId"] is None
        capacity = next(f for f in element_default["sections"][0]["fields"] if f["code"] == "capacity")
        assert capacity == {"code": "capacity", "type": "integer", "system": False, "value": 9}

    async def test_update_and_delete(self, client: httpx.AsyncClient, run: Run) -> None:
        await washers(client)
        made = (await run(CREATE, type="dishwasher", input=two_sections()))["createCardLayout"]
        await create_field(client, "dishwasher", "colour", "string")
        updated = await run(
            """
            mutation($id: UUID!) {
              updateCardLayout(type: "dishwasher", id: $id, input: {name: "Renamed", hidden: ["notes"]}) {
                __typename ... on CardLayout { name hidden sections { code fields } }
              }
            }
            """,
            id=made["id"],
        )
        assert updated["updateCardLayout"] == {
            "__typename": "CardLayout",
            "name": "Renamed",
            "hidden": ["notes"],
            "sections": [{"code": "deal", "fields": ["title", "amount"]}, {"code": "tech", "fields": ["capacity"]}],
        }
        card = (await run(TYPE_CARD))["entityType"]["layout"]
        tech = codes(card)[1][1]
        assert "colour" in tech
        assert "notes" not in tech
        listed = await run('{ cardLayouts(type: "dishwasher") { id name } }')
        assert listed["cardLayouts"] == [{"id": made["id"], "name": "Renamed"}]
        one = await run('query($id: UUID!) { cardLayout(type: "dishwasher", id: $id) { name } }', id=made["id"])
        assert one["cardLayout"]["name"] == "Renamed"
        deleted = await run(
            'mutation($id: UUID!) { deleteCardLayout(type: "dishwasher", id: $id) { __typename } }', id=made["id"]
        )
        assert deleted["deleteCardLayout"]["__typename"] == "Deleted"
        assert (await run('{ cardLayouts(type: "dishwasher") { id } }'))["cardLayouts"] == []

    async def test_an_invalid_layout_is_a_validation_error(self, client: httpx.AsyncClient, run: Run) -> None:
        await washers(client)
        body = {"name": "Bad", "sections": [{"code": "main", "title": "Main", "fields": ["colour", "title", "title"]}]}
        refused = (await run(CREATE, type="dishwasher", input=body))["createCardLayout"]
        assert refused["__typename"] == "ValidationError"
        assert [f["field"] for f in refused["fields"]] == ["sections[0].fields[0]", "sections[0].fields[2]"]
        assert (await run('{ cardLayouts(type: "dishwasher") { id } }'))["cardLayouts"] == []

    async def test_a_viewer_reads_but_cannot_change(
        self, app: FastAPI, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        w = await washers(client)
        saved = await layout(client, sections=[{"code": "main", "title": "Main", "fields": ["title"]}])
        key = viewer_client.headers["Authorization"].removeprefix("Bearer ")
        async with http_client(app, key) as viewer:
            refused = await viewer.execute(
                GraphQLRequest(CREATE, variable_values={"type": "dishwasher", "input": two_sections()})
            )
            assert refused["createCardLayout"]["__typename"] == "Forbidden"
            card = await viewer.execute(GraphQLRequest(ELEMENT_CARD, variable_values={"id": w.in_a["id"]}))
            assert card["element"]["card"]["layoutId"] == saved["id"]

    async def test_another_workspaces_layout_and_type_are_not_found(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, run: Run
    ) -> None:
        await washers(client)
        await washers(other_client)
        theirs = await layout(other_client, sections=[{"code": "main", "title": "Main"}])
        with pytest.raises(TransportQueryError, match="not found"):
            await run('query($id: UUID!) { cardLayout(type: "dishwasher", id: $id) { name } }', id=theirs["id"])
        gone = await run(
            'mutation($id: UUID!) { deleteCardLayout(type: "dishwasher", id: $id) { __typename } }', id=theirs["id"]
        )
        assert gone["deleteCardLayout"]["__typename"] == "NotFound"
        assert len((await other_client.get("/entity-types/dishwasher/layouts")).json()["items"]) == 1


class TestTyped:
    async def test_every_typed_element_has_its_card(
        self, app: FastAPI, client: httpx.AsyncClient, run: Run, count_queries: Any
    ) -> None:
        w = await washers(client)
        made = (await run(CREATE, type="dishwasher", input=two_sections(w.pipeline_a)))["createCardLayout"]
        query = (
            "query($id: UUID!) { dishwasher(id: $id) { card { layoutId sections { code fields { code value } } } } }"
        )
        one = await run(query, id=w.in_a["id"])
        card = one["dishwasher"]["card"]
        assert card["layoutId"] == made["id"]
        assert card["sections"][0] == {
            "code": "deal",
            "fields": [{"code": "title", "value": "DW-A"}, {"code": "amount", "value": 499.9}],
        }
        assert card["sections"][1]["fields"][:2] == [
            {"code": "capacity", "value": 12},
            {"code": "energy_class", "value": "A"},
        ]
        for n in range(10):
            await client.post(
                "/entity-types/dishwasher/elements", json={"title": f"more {n}", "pipeline_id": w.pipeline_a}
            )
        counter: QueryCounter = count_queries()
        page = await run("{ dishwashers(first: 50) { edges { node { title card { layoutId sections { code } } } } } }")
        nodes = [e["node"] for e in page["dishwashers"]["edges"]]
        assert len(nodes) == 12
        assert {n["card"]["layoutId"] for n in nodes} == {made["id"], None}
        # The cards of a whole page cost one query for the type's layouts, not one per element.
        assert sum("card_layouts" in s for s in counter.statements) == 1

    async def test_a_custom_field_named_card_keeps_a_name_of_its_own(self, client: httpx.AsyncClient, run: Run) -> None:
        w = await washers(client)
        await create_field(client, "dishwasher", "card", "string")
        await client.patch(f"/elements/{w.in_a['id']}", json={"values": {"card": "gold"}})
        found = await run(
            "query($id: UUID!) { dishwasher(id: $id) { cardField card { sections { fields { code } } } } }",
            id=w.in_a["id"],
        )
        assert found["dishwasher"]["cardField"] == "gold"
        assert "card" in [f["code"] for s in found["dishwasher"]["card"]["sections"] for f in s["fields"]]

    async def test_a_role_layout_through_graphql(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        w = await washers(client)
        desk = await role(client, "Desk", grants=[{"entity_type": "dishwasher", "read": "all"}])
        await layout(client, role_id=desk["id"], sections=[{"code": "desk", "title": "Desk", "fields": ["notes"]}])
        async with await client_with_role(app, client, "Desk") as desk_client:
            key = desk_client.headers["Authorization"].removeprefix("Bearer ")
        async with http_client(app, key) as session:
            query = "query($id: UUID!) { dishwasher(id: $id) { card { sections { code } } } }"
            found = await session.execute(GraphQLRequest(query, variable_values={"id": w.in_default["id"]}))
        assert found["dishwasher"]["card"]["sections"][0]["code"] == "desk"
