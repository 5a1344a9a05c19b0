"""The generic schema through a real GraphQL client: same auth, services and errors as REST."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import gql
from gql.transport.exceptions import TransportQueryError, TransportServerError

from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type, default_pipeline, lead_type
from tests.graphql.conftest import Run, http_client

CREATE_ELEMENT = """
mutation($type: String!, $input: ElementCreateInput!) {
  createElement(type: $type, input: $input) {
    __typename
    ... on Element { id title version stageCode values }
    ... on ValidationError { message code fields { field message } }
  }
}
"""


class TestAuth:
    async def test_without_a_key_is_401_problem(self, app: FastAPI) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.post("/graphql", json={"query": "{ entityTypes { code } }"})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    async def test_with_a_wrong_key_gql_raises(self, app: FastAPI) -> None:
        with pytest.raises(TransportServerError):
            async with http_client(app, "sf_wrong") as session:
                await session.execute(gql("{ entityTypes { code } }"))

    async def test_graphiql_only_in_development(self, app: FastAPI, tenant: Tenant) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.get(
                "/graphql", headers={"Accept": "text/html", "Authorization": f"Bearer {tenant.admin_key}"}
            )
        assert response.status_code == 404

    async def test_tenants_are_isolated(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, run: Run
    ) -> None:
        await create_type(other_client, "secret")
        foreign = await create_element(other_client, "secret", title="theirs")
        with pytest.raises(TransportQueryError) as caught:
            await run("query($id: UUID!) { element(id: $id) { id } }", id=foreign["id"])
        assert caught.value.errors is not None
        assert caught.value.errors[0]["extensions"]["code"] == "not-found"
        assert (await run("{ entityTypes { code } }"))["entityTypes"] == []


class TestMetadataMutations:
    async def test_type_fields_pipeline_stages(self, run: Run) -> None:
        created = await run(
            """mutation {
              createEntityType(input: {code: "deal", title: "Deal", settings: {pipelinesEnabled: true}}) {
                ... on EntityType {
                  code settings { pipelinesEnabled stagesEnabled } pipelines { title stages { code } }
                }
              }
            }"""
        )
        deal = created["createEntityType"]
        assert deal["settings"] == {"pipelinesEnabled": True, "stagesEnabled": True}
        assert [s["code"] for s in deal["pipelines"][0]["stages"]] == ["NEW", "IN_PROGRESS", "SUCCESS", "FAIL"]

        field = await run(
            """mutation {
              createField(type: "deal", input: {code: "size", type: "enum", options: [{value: "s"}, {value: "m"}]}) {
                __typename ... on Field { code type options { value label } }
              }
            }"""
        )
        assert field["createField"]["options"] == [{"value": "s", "label": "s"}, {"value": "m", "label": "m"}]
        duplicate = await run(
            'mutation { createField(type: "deal", input: {code: "size", type: "string"}) '
            "{ __typename ... on Conflict { code message } } }"
        )
        assert duplicate["createField"]["__typename"] == "Conflict"
        bad = await run(
            'mutation { createField(type: "deal", input: {code: "Bad Code", type: "nope"}) '
            "{ __typename ... on ValidationError { fields { field message } } } }"
        )
        assert {f["field"] for f in bad["createField"]["fields"]} == {"code", "type"}

        pipeline = await run(
            """mutation {
              createPipeline(type: "deal", input: {title: "Partners", stages: [
                {code: "A", title: "A"}, {code: "B", title: "B"}, {code: "WON", title: "Won", semantic: success}
              ]}) { ... on Pipeline { id stages { id code semantic } } }
            }"""
        )
        stages = pipeline["createPipeline"]["stages"]
        assert stages[2]["semantic"] == "success"
        reordered = await run(
            "mutation($p: UUID!, $ids: [UUID!]!) { reorderStages(pipelineId: $p, stageIds: $ids) "
            "{ ... on StageList { items { code sort } } } }",
            p=pipeline["createPipeline"]["id"],
            ids=[stages[1]["id"], stages[0]["id"], stages[2]["id"]],
        )
        assert [s["code"] for s in reordered["reorderStages"]["items"]] == ["B", "A", "WON"]
        not_all = await run(
            "mutation($p: UUID!, $ids: [UUID!]!) { reorderStages(pipelineId: $p, stageIds: $ids) "
            "{ __typename ... on ValidationError { fields { field } } } }",
            p=pipeline["createPipeline"]["id"],
            ids=[stages[0]["id"]],
        )
        assert not_all["reorderStages"] == {"__typename": "ValidationError", "fields": [{"field": "stage_ids"}]}

    async def test_viewer_gets_forbidden(self, app: FastAPI, viewer_client: httpx.AsyncClient) -> None:
        key = viewer_client.headers["Authorization"].removeprefix("Bearer ")
        async with http_client(app, key) as session:
            result = await session.execute(
                gql('mutation { createEntityType(input: {code: "x1", title: "X"}) { __typename } }')
            )
        assert result["createEntityType"]["__typename"] == "Forbidden"


class TestElements:
    async def test_create_errors_are_typed_and_nothing_is_written(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        result = await run(CREATE_ELEMENT, type="lead", input={"title": "x", "values": {"budget": "lots", "nope": 1}})
        error = result["createElement"]
        assert error["__typename"] == "ValidationError"
        assert error["code"] == "validation-error"
        assert {f["field"] for f in error["fields"]} == {"values.budget", "values.nope"}
        listed = await run('{ elements(type: "lead") { totalCount } }')
        assert listed["elements"]["totalCount"] == 0

    async def test_update_with_version_move_delete_restore(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        element = (await run(CREATE_ELEMENT, type="lead", input={"title": "A", "values": {"budget": 5}}))[
            "createElement"
        ]
        update = """mutation($id: UUID!, $version: Int) {
          updateElement(id: $id, version: $version, input: {values: {industry: "it"}}) {
            __typename ... on Element { version values } ... on Conflict { code }
          }
        }"""
        updated = (await run(update, id=element["id"], version=1))["updateElement"]
        assert updated == {"__typename": "Element", "version": 2, "values": {"budget": 5, "industry": "it"}}
        stale = (await run(update, id=element["id"], version=1))["updateElement"]
        assert stale == {"__typename": "Conflict", "code": "version-mismatch"}

        moved = await run(
            'mutation($id: UUID!) { moveElement(id: $id, stageCode: "SUCCESS") '
            "{ ... on Element { stageCode stage { code semantic } history { kind } } } }",
            id=element["id"],
        )
        assert moved["moveElement"]["stage"] == {"code": "SUCCESS", "semantic": "success"}
        assert [h["kind"] for h in moved["moveElement"]["history"]] == ["created", "updated", "moved"]
        neither = await run(
            "mutation($id: UUID!) { moveElement(id: $id) { __typename ... on ValidationError { code } } }",
            id=element["id"],
        )
        assert neither["moveElement"]["__typename"] == "ValidationError"

        deleted = await run("mutation($id: UUID!) { deleteElement(id: $id) { __typename } }", id=element["id"])
        assert deleted["deleteElement"]["__typename"] == "Deleted"
        bin_ = await run('{ elements(type: "lead", deleted: true) { edges { node { id deletedAt } } } }')
        assert bin_["elements"]["edges"][0]["node"]["id"] == element["id"]
        restored = await run(
            "mutation($id: UUID!) { restoreElement(id: $id) { ... on Element { deletedAt } } }", id=element["id"]
        )
        assert restored["restoreElement"] == {"deletedAt": None}
        again = await run("mutation($id: UUID!) { restoreElement(id: $id) { __typename } }", id=element["id"])
        assert again["restoreElement"]["__typename"] == "Conflict"
        missing = await run('mutation { deleteElement(id: "00000000-0000-0000-0000-000000000000") { __typename } }')
        assert missing["deleteElement"]["__typename"] == "NotFound"

    async def test_filter_sort_and_page(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        for budget in range(7):
            await create_element(client, "lead", title=f"L{budget}", values={"budget": budget})
        query = """query($filter: JSON, $after: String) {
          elements(type: "lead", filter: $filter, sort: "-budget", first: 2, after: $after) {
            totalCount
            edges { node { title } cursor }
            pageInfo { hasNextPage endCursor }
          }
        }"""
        seen: list[str] = []
        after = None
        for _ in range(3):
            page = (await run(query, filter={"field": "budget", "op": "gte", "value": 2}, after=after))["elements"]
            assert page["totalCount"] == 5
            seen.extend(e["node"]["title"] for e in page["edges"])
            after = page["pageInfo"]["endCursor"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            assert page["edges"][-1]["cursor"] == after
        assert seen == ["L6", "L5", "L4", "L3", "L2"]
        first_page = (await run(query, filter=None, after=None))["elements"]
        after_first = (await run(query, filter=None, after=first_page["edges"][0]["cursor"]))["elements"]
        assert [e["node"]["title"] for e in after_first["edges"]] == ["L5", "L4"]

    async def test_bad_filter_and_big_page_are_clear_errors(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        with pytest.raises(TransportQueryError) as caught:
            await run('{ elements(type: "lead", filter: {field: "budget", op: "like", value: 1}) { totalCount } }')
        errors: Any = caught.value.errors
        assert errors[0]["extensions"]["code"] == "validation-error"
        assert errors[0]["extensions"]["errors"][0]["field"] == "filter.op"
        with pytest.raises(TransportQueryError) as caught:
            await run('{ elements(type: "lead", first: 501) { totalCount } }')
        assert "between 1 and 500" in str(caught.value)

    async def test_batch(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        existing = await create_element(client, "lead", title="old")
        result = await run(
            """mutation($items: [BatchItemInput!]!) {
              batchElements(type: "lead", items: $items) {
                __typename ... on ElementList { items { title } } ... on ValidationError { fields { field } }
              }
            }""",
            items=[
                {"op": "create", "data": {"title": "new"}},
                {"op": "update", "id": existing["id"], "data": {"title": "renamed"}},
            ],
        )
        assert [e["title"] for e in result["batchElements"]["items"]] == ["new", "renamed"]
        bad = await run(
            """mutation($items: [BatchItemInput!]!) {
              batchElements(type: "lead", items: $items) { __typename ... on ValidationError { fields { field } } }
            }""",
            items=[{"op": "create", "data": {"values": {"budget": -1}}}],
        )
        assert bad["batchElements"]["fields"] == [{"field": "items[0].values.budget"}]


class TestRelationsAndBoard:
    async def test_links_children_parents_and_board(self, client: httpx.AsyncClient, run: Run) -> None:
        await create_type(client, "company")
        await create_type(client, "contact")
        await create_field(client, "contact", "phone", "phone")
        relation = await run(
            'mutation { createRelation(parentType: "company", childType: "contact") '
            "{ __typename ... on Relation { id parentType childType } } }"
        )
        assert relation["createRelation"]["childType"] == "contact"
        company = await create_element(client, "company", title="ACME")
        ann = await create_element(client, "contact", title="Ann")
        link = await run(
            "mutation($p: UUID!, $c: UUID!) { linkElements(parentId: $p, childId: $c) { __typename } }",
            p=company["id"],
            c=ann["id"],
        )
        assert link["linkElements"]["__typename"] == "Link"
        twice = await run(
            "mutation($p: UUID!, $c: UUID!) { linkElements(parentId: $p, childId: $c) { __typename } }",
            p=company["id"],
            c=ann["id"],
        )
        assert twice["linkElements"]["__typename"] == "Conflict"
        tree = await run(
            'query($id: UUID!) { element(id: $id) { children(type: "contact") { title parents { title } } } }',
            id=company["id"],
        )
        assert tree["element"]["children"] == [{"title": "Ann", "parents": [{"title": "ACME"}]}]

        pipeline = await default_pipeline(client, "company")
        board = await run(
            "query($p: UUID!) { board(pipelineId: $p, perStage: 5) "
            "{ stages { stage { code } count elements { title } } } }",
            p=pipeline["id"],
        )
        first = board["board"]["stages"][0]
        assert first == {"stage": {"code": "NEW"}, "count": 1, "elements": [{"title": "ACME"}]}
        unlinked = await run(
            "mutation($p: UUID!, $c: UUID!) { unlinkElements(parentId: $p, childId: $c) { __typename } }",
            p=company["id"],
            c=ann["id"],
        )
        assert unlinked["unlinkElements"]["__typename"] == "Deleted"
