"""The typed schema of a workspace: generated from its entity types and fields, rebuilt when they change."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from graphql import OperationDefinitionNode, build_schema, parse, print_ast, validate

from app.main import create_app
from app.settings import Settings
from tests.conftest import QueryCounter
from tests.graphql.conftest import Run, http_client

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
DEFINE = """
mutation {
  createEntityType(input: {code: "dishwasher", title: "Dishwasher model", settings: {pipelinesEnabled: true}}) {
    __typename
  }
  model: createField(type: "dishwasher", input: {code: "model", type: "string", required: true}) { __typename }
  capacity: createField(type: "dishwasher", input: {code: "capacity", type: "integer", min: 1, max: 100}) {
    __typename
  }
  serial: createField(type: "dishwasher", input: {code: "serial", type: "integer"}) { __typename }
  price: createField(type: "dishwasher", input: {code: "price", type: "money"}) { __typename }
  launched: createField(type: "dishwasher", input: {code: "launched_on", type: "date"}) { __typename }
  tags: createField(type: "dishwasher", input: {code: "tags", type: "string", multiple: true}) { __typename }
  createPipeline(type: "dishwasher", input: {title: "Certification", stages: [
    {code: "LAB", title: "In the lab"}, {code: "CERTIFIED", title: "Certified", semantic: success}
  ]}) { ... on Pipeline { id } }
}
"""
CREATE = """
mutation($input: DishwasherInput!) {
  createDishwasher(input: $input) {
    __typename
    ... on Dishwasher { id title model capacity price launchedOn tags stageCode version }
    ... on ValidationError { fields { field message } }
  }
}
"""
LIST = """
query($filter: DishwasherFilter, $after: String, $first: Int!) {
  dishwashers(filter: $filter, sort: "-capacity", first: $first, after: $after) {
    totalCount
    edges { node { title model capacity stage { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def _define(run: Run) -> str:
    result = await run(DEFINE)
    assert all(value.get("__typename") != "ValidationError" for value in result.values()), result
    pipeline_id: str = result["createPipeline"]["id"]
    return pipeline_id


async def _id_of(run: Run, model: str) -> str:
    data = await run("query($m: String!) { dishwashers(filter: {model: {eq: $m}}) { edges { node { id } } } }", m=model)
    element_id: str = data["dishwashers"]["edges"][0]["node"]["id"]
    return element_id


async def _titles(run: Run, filter: dict[str, Any] | None, first: int = 50) -> list[str]:
    data = await run(LIST, filter=filter, first=first)
    return [e["node"]["title"] for e in data["dishwashers"]["edges"]]


class TestTypedSchema:
    async def test_create_filter_page_update_move(self, run: Run) -> None:
        pipeline_id = await _define(run)
        models = [("Alpha", 8), ("Bravo", 12), ("Bosch", 14), ("Beko", 10), ("Miele", 16)]
        for model, capacity in models:
            created = await run(
                CREATE,
                input={
                    "title": f"{model} {capacity}",
                    "model": model,
                    "capacity": capacity,
                    "price": 499.5,
                    "launchedOn": "2026-01-15",
                    "tags": ["eco", "quiet"],
                },
            )
            dishwasher = created["createDishwasher"]
            assert dishwasher["__typename"] == "Dishwasher", dishwasher
        assert dishwasher["capacity"] == 16
        big = await run(
            'mutation { createDishwasher(input: {model: "Big", serial: 900000000000}) '
            "{ ... on Dishwasher { serial } } }"
        )
        assert big["createDishwasher"] == {"serial": 900000000000}
        found = await run("{ dishwashers(filter: {serial: {gt: 899999999999}}) { totalCount } }")
        assert found["dishwashers"]["totalCount"] == 1
        await run("mutation($id: UUID!) { deleteElement(id: $id) { __typename } }", id=await _id_of(run, "Big"))
        assert dishwasher["launchedOn"] == "2026-01-15"
        assert dishwasher["tags"] == ["eco", "quiet"]
        assert dishwasher["stageCode"] == "NEW"

        assert await _titles(run, {"capacity": {"gte": 10}, "model": {"startsWith": "B"}}) == [
            "Bosch 14",
            "Bravo 12",
            "Beko 10",
        ]
        assert await _titles(run, {"or": [{"model": {"eq": "Alpha"}}, {"capacity": {"gt": 15}}]}) == [
            "Miele 16",
            "Alpha 8",
        ]
        assert await _titles(run, {"not": {"model": {"in": ["Alpha", "Beko", "Bosch"]}}}) == ["Miele 16", "Bravo 12"]

        seen: list[str] = []
        after = None
        while True:
            page = (await run(LIST, filter=None, first=2, after=after))["dishwashers"]
            assert page["totalCount"] == 5
            seen.extend(e["node"]["title"] for e in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == ["Miele 16", "Bosch 14", "Bravo 12", "Beko 10", "Alpha 8"]

        updated = await run(
            """mutation($id: UUID!) {
              updateDishwasher(id: $id, version: 1, input: {capacity: 17, tags: null}) {
                __typename ... on Dishwasher { capacity tags version }
              }
            }""",
            id=dishwasher["id"],
        )
        assert updated["updateDishwasher"] == {"__typename": "Dishwasher", "capacity": 17, "tags": None, "version": 2}
        moved = await run(
            """mutation($id: UUID!, $pipeline: UUID!) {
              moveDishwasher(id: $id, pipelineId: $pipeline, stageCode: "CERTIFIED", version: 2) {
                __typename ... on Dishwasher { stage { code semantic } pipeline { title } }
              }
            }""",
            id=dishwasher["id"],
            pipeline=pipeline_id,
        )
        assert moved["moveDishwasher"]["stage"] == {"code": "CERTIFIED", "semantic": "success"}
        assert moved["moveDishwasher"]["pipeline"] == {"title": "Certification"}

    async def test_validation_errors_are_typed_and_name_the_typed_fields(self, run: Run) -> None:
        await _define(run)
        result = await run(CREATE, input={"title": "no model", "capacity": 0})
        error = result["createDishwasher"]
        assert error["__typename"] == "ValidationError"
        assert {f["field"]: f["message"] for f in error["fields"]} == {
            "model": "is required",
            "capacity": "must be at least 1",
        }
        with pytest.raises(TransportQueryError) as caught:
            await run(CREATE, input={"model": "X", "capacity": "twelve"})
        assert "Int cannot represent" in str(caught.value)
        listed = await run(LIST, filter=None, first=10)
        assert listed["dishwashers"]["totalCount"] == 0

    async def test_an_element_of_another_type_is_not_found(self, client: httpx.AsyncClient, run: Run) -> None:
        await _define(run)
        await client.post("/entity-types", json={"code": "lead", "title": "Lead"})
        lead = (await client.post("/entity-types/lead/elements", json={"title": "L"})).json()
        moved = await run(
            'mutation($id: UUID!) { moveDishwasher(id: $id, stageCode: "IN_PROGRESS") { __typename } }', id=lead["id"]
        )
        assert moved["moveDishwasher"]["__typename"] == "NotFound"
        with pytest.raises(TransportQueryError, match="not a dishwasher"):
            await run("query($id: UUID!) { dishwasher(id: $id) { id } }", id=lead["id"])


class TestSchemaFollowsMetadata:
    async def test_field_added_through_rest_is_queryable_on_the_next_request(
        self, client: httpx.AsyncClient, run: Run
    ) -> None:
        await _define(run)
        await run(CREATE, input={"model": "Alpha"})
        query = "{ dishwashers { edges { node { model energyClass } } } }"
        with pytest.raises(TransportQueryError, match="energyClass"):
            await run(query)
        response = await client.post(
            "/entity-types/dishwasher/fields",
            json={"code": "energy_class", "type": "enum", "options": [{"value": "A"}, {"value": "B"}]},
        )
        assert response.status_code == 201
        data = await run(query)
        assert data["dishwashers"]["edges"] == [{"node": {"model": "Alpha", "energyClass": None}}]
        filtered = await run("{ dishwashers(filter: {energyClass: {isNull: true}}) { totalCount } }")
        assert filtered["dishwashers"]["totalCount"] == 1

        await client.delete("/entity-types/dishwasher/fields/energy_class")
        with pytest.raises(TransportQueryError, match="energyClass"):
            await run(query)

    async def test_sdl_endpoint_returns_the_workspace_schema(self, client: httpx.AsyncClient, run: Run) -> None:
        await _define(run)
        response = await client.get("/graphql/schema.graphql")
        assert response.status_code == 200
        sdl = response.text
        for expected in (
            "type Dishwasher {",
            "  model: String",
            "  capacity: Int",
            "  serial: BigInt",
            "  launchedOn: Date",
            "input DishwasherFilter {",
            "input DishwasherInput {",
            "dishwashers(filter: DishwasherFilter = null",
            "createDishwasher(input: DishwasherInput!): DishwasherResult!",
            "type ElementConnection {",
        ):
            assert expected in sdl, expected

    async def test_type_codes_that_clash_with_generic_names_get_a_suffix(
        self, client: httpx.AsyncClient, run: Run
    ) -> None:
        for code in ("stage", "element", "string_filter", "big_int"):
            assert (await client.post("/entity-types", json={"code": code, "title": code})).status_code == 201
        await run('mutation { createStageRecord(input: {title: "s"}) { __typename } }')
        data = await run("{ stageRecords { totalCount edges { node { title } } } elementRecords { totalCount } }")
        assert data["stageRecords"]["edges"] == [{"node": {"title": "s"}}]
        assert data["elementRecords"]["totalCount"] == 0
        other = await run("{ stringFilterRecords { totalCount } bigIntRecords { totalCount } }")
        assert other == {"stringFilterRecords": {"totalCount": 0}, "bigIntRecords": {"totalCount": 0}}
        sdl = (await client.get("/graphql/schema.graphql")).text
        assert "type StringFilterRecord {" in sdl
        assert "type BigIntRecord {" in sdl


class TestReadmeExamples:
    async def test_the_readme_operations_are_valid_against_the_workspace_sdl(
        self, client: httpx.AsyncClient, run: Run
    ) -> None:
        await _define(run)
        await client.post("/entity-types", json={"code": "warranty_claim", "title": "Warranty claim"})
        await client.post("/relations", json={"parent_type": "dishwasher", "child_type": "warranty_claim"})
        block = README.split("```graphql\n", 1)[1].split("```", 1)[0]
        sdl = (await client.get("/graphql/schema.graphql")).text
        errors = validate(build_schema(sdl), parse(block))
        assert errors == [], errors
        operations = [d for d in parse(block).definitions if isinstance(d, OperationDefinitionNode)]
        assert [o.operation.value for o in operations] == ["query", "mutation", "subscription"]
        created = await run(print_ast(operations[1]))
        assert created["createDishwasher"]["__typename"] == "Dishwasher"
        found = await run(print_ast(operations[0]))
        assert found["dishwashers"]["edges"][0]["node"]["model"] == "SMS6"


async def test_graphiql_is_served_without_a_key_in_development(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"ENVIRONMENT": "development", "DB_POOL_SIZE": 1}))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http,
    ):
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        query = await http.get("/graphql", params={"query": "{ entityTypes { code } }"})
        assert query.status_code == 401


async def test_typed_types_belong_to_their_workspace(app: FastAPI, run: Run, other_client: httpx.AsyncClient) -> None:
    await _define(run)
    await run(CREATE, input={"model": "Mine"})
    key = other_client.headers["Authorization"].removeprefix("Bearer ")
    async with http_client(app, key) as other:
        with pytest.raises(TransportQueryError, match="dishwashers"):
            await other.execute(GraphQLRequest("{ dishwashers { totalCount } }"))
        sdl = (await other_client.get("/graphql/schema.graphql")).text
    assert "Dishwasher" not in sdl
    assert "type Element {" in sdl


async def test_field_codes_that_clash_after_camel_case_get_distinct_names(client: httpx.AsyncClient, run: Run) -> None:
    await client.post("/entity-types", json={"code": "gadget", "title": "Gadget"})
    for code in ("ab_1", "ab1", "not", "stage"):
        response = await client.post("/entity-types/gadget/fields", json={"code": code, "type": "integer"})
        assert response.status_code == 201, response.text
    created = await run(
        "mutation { createGadget(input: {ab1: 1, ab1Field: 2, notField: 3, stageField: 4}) "
        "{ ... on Gadget { ab1 ab1Field notField stageField stage { code } } } }"
    )
    assert created["createGadget"] == {
        "ab1": 1,
        "ab1Field": 2,
        "notField": 3,
        "stageField": 4,
        "stage": {"code": "NEW"},
    }
    found = await run("{ gadgets(filter: {notField: {eq: 3}, not: {ab1Field: {eq: 5}}}) { totalCount } }")
    assert found["gadgets"]["totalCount"] == 1


async def test_reference_fields_resolve_to_the_typed_element_in_a_batch(
    client: httpx.AsyncClient, run: Run, count_queries: Callable[[], QueryCounter]
) -> None:
    for code in ("company", "contact"):
        assert (await client.post("/entity-types", json={"code": code, "title": code})).status_code == 201
    await client.post("/entity-types/company/fields", json={"code": "city", "type": "string"})
    await client.post(
        "/entity-types/contact/fields", json={"code": "employer", "type": "reference", "target_type": "company"}
    )
    await client.post(
        "/entity-types/company/fields",
        json={"code": "staff", "type": "reference", "target_type": "contact", "multiple": True},
    )
    acme = (await run('mutation { createCompany(input: {title: "ACME", city: "Oslo"}) { ... on Company { id } } }'))[
        "createCompany"
    ]
    for name in ("Ann", "Bob", "Cid"):
        created = await run(
            "mutation($c: UUID!, $t: String!) { createContact(input: {title: $t, employer: $c}) { __typename } }",
            c=acme["id"],
            t=name,
        )
        assert created["createContact"]["__typename"] == "Contact"
    query = '{ contacts(sort: "title") { edges { node { title employer { title city staff { title } } } } } }'
    await run(query)
    counter = count_queries()
    data = await run(query)
    nodes = [e["node"] for e in data["contacts"]["edges"]]
    assert nodes[0] == {"title": "Ann", "employer": {"title": "ACME", "city": "Oslo", "staff": None}}
    assert [n["employer"]["title"] for n in nodes] == ["ACME", "ACME", "ACME"]
    assert counter.count <= 20, counter.statements
    filtered = await run("query($c: UUID!) { contacts(filter: {employer: {eq: $c}}) { totalCount } }", c=acme["id"])
    assert filtered["contacts"]["totalCount"] == 3
    sdl = (await client.get("/graphql/schema.graphql")).text
    assert "employer: Company" in sdl
    assert "staff: [Contact!]" in sdl


async def test_awkward_codes_still_build_a_typed_schema(client: httpx.AsyncClient) -> None:
    codes = ["query", "mutation", "subscription", "page_info", "json", "uuid", "date", "element_edge", "deleted"]
    codes += ["dishwasher", "dishwasher_edge", "dishwasher_filter", "dishwashers", "error", "field_error"]
    codes += ["task", "user", "webhook"]  # their names are the generic schema's: they get a `Record` suffix
    for code in codes:
        assert (await client.post("/entity-types", json={"code": code, "title": code})).status_code == 201
    for field_code in ("and", "or", "not", "a_b", "ab", "page_info", "edges", "node", "value", "history"):
        response = await client.post("/entity-types/dishwasher/fields", json={"code": field_code, "type": "string"})
        assert response.status_code == 201, response.text
    sdl = (await client.get("/graphql/schema.graphql")).text
    assert "type Dishwasher {" in sdl, "the typed schema fell back to the generic one"
    # and Element-, AutomationRun-, AuditEntry-, Activity-, TimelineConnection
    assert sdl.count("Connection {") == len(codes) + 5
    assert "type TaskRecord {" in sdl
    assert "createUserRecord(input: UserRecordInput!): UserRecordResult!" in sdl


async def test_enum_fields_become_graphql_enums(client: httpx.AsyncClient, run: Run) -> None:
    await client.post("/entity-types", json={"code": "lead", "title": "Lead"})
    options = [{"value": "it", "label": "IT"}, {"value": "retail"}, {"value": "bank"}]
    await client.post("/entity-types/lead/fields", json={"code": "industry", "type": "enum", "options": options})
    grades = [{"value": "A+"}, {"value": "B"}]
    await client.post("/entity-types/lead/fields", json={"code": "grade", "type": "enum", "options": grades})
    for industry in ("it", "bank", "retail"):
        created = await run(
            f'mutation {{ createLead(input: {{title: "{industry}", industry: {industry}, grade: "A+"}}) '
            "{ ... on Lead { industry grade } } }"
        )
        assert created["createLead"] == {"industry": industry, "grade": "A+"}
    found = await run('{ leads(filter: {industry: {in: [it, bank]}}, sort: "title") { edges { node { title } } } }')
    assert [e["node"]["title"] for e in found["leads"]["edges"]] == ["bank", "it"]
    with pytest.raises(TransportQueryError, match="farm"):
        await run("mutation { createLead(input: {industry: farm}) { __typename } }")
    sdl = (await client.get("/graphql/schema.graphql")).text
    assert "enum LeadIndustry {" in sdl
    assert "  industry: LeadIndustry" in sdl
    assert "  grade: String" in sdl  # "A+" is no GraphQL name: the field stays a String
