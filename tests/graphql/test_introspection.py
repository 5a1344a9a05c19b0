"""The standard introspection query (what graphql-codegen, Apollo and gql run) answers on every schema.

It runs over HTTP, as a codegen tool sends it, and the answer must build a client schema equal to the SDL that
`GET /api/v1/graphql/schema.graphql` serves: the generic schema and a typed one with every kind of field.
"""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import Client, gql
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import (
    GraphQLError,
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    print_schema,
)

from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import create_field, create_type, lead_type
from tests.gql_asgi import asgi_transport
from tests.graphql.conftest import Run


async def _introspect(app: FastAPI, key: str) -> dict[str, Any]:
    """POST the full introspection query (descriptions, deprecations, repeatable directives) as JSON over HTTP."""
    query = get_introspection_query(
        descriptions=True, input_value_deprecation=True, directive_is_repeatable=True, specified_by_url=True
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        response = await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def _served_sdl(client: httpx.AsyncClient) -> str:
    response = await client.get("/graphql/schema.graphql")
    assert response.status_code == 200, response.text
    return response.text


def _same(introspection: dict[str, Any], sdl: str) -> None:
    client_schema = build_client_schema(introspection)  # type: ignore[arg-type]
    assert print_schema(lexicographic_sort_schema(client_schema)) == print_schema(
        lexicographic_sort_schema(build_schema(sdl))
    )


async def test_generic_schema_answers_the_standard_introspection_query(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    introspection = await _introspect(app, tenant.admin_key)
    schema = build_client_schema(introspection)  # type: ignore[arg-type]
    data = schema.get_type("BatchItemInput").fields["data"]  # type: ignore[union-attr]
    assert data.default is not None  # the JSON `{}` default that used to break the query
    assert schema.query_type is not None
    assert "board" in schema.query_type.fields
    _same(introspection, await _served_sdl(client))


async def test_typed_schema_answers_the_standard_introspection_query(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await lead_type(client)
    await create_type(client, "company")
    await create_field(client, "company", "sector", "enum", options=[{"value": "it"}, {"value": "not a name"}])
    await create_field(client, "lead", "employer", "reference", target_type="company")
    await create_field(client, "lead", "tags", "string", multiple=True, default=["new"])
    await create_field(client, "lead", "owner", "user")
    await create_field(client, "lead", "big", "integer", default=10**12)
    await create_field(client, "lead", "price", "money", default=9.5)
    await create_field(client, "lead", "met_at", "datetime")
    introspection = await _introspect(app, tenant.admin_key)
    schema = build_client_schema(introspection)  # type: ignore[arg-type]
    for name in ("Lead", "LeadFilter", "LeadInput", "LeadPatch", "Company", "LeadIndustry", "BigInt"):
        assert schema.get_type(name) is not None, name
    _same(introspection, await _served_sdl(client))


async def test_gql_fetches_the_typed_schema_and_validates_against_it(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """gql's `fetch_schema_from_transport` is the introspection query a Python client runs first."""
    await lead_type(client)
    transport = HTTPXAsyncTransport(
        url="http://testserver/graphql",
        headers={"Authorization": f"Bearer {tenant.admin_key}"},
        transport=asgi_transport(app),
    )
    gql_client = Client(transport=transport, fetch_schema_from_transport=True)
    async with gql_client as session:
        assert gql_client.schema is not None
        assert gql_client.schema.get_type("Lead") is not None
        # gql now checks documents against the fetched schema before sending them
        with pytest.raises(GraphQLError, match="Cannot query field"):
            await session.execute(gql("{ leads { edges { node { nope } } } }"))
        data = await session.execute(gql("{ leads(filter: {industry: {eq: it}}) { totalCount } }"))
        assert data == {"leads": {"totalCount": 0}}


async def test_batch_item_data_still_defaults_to_an_empty_object(run: Run, client: httpx.AsyncClient) -> None:
    """The default keeps its meaning: an item with no `data` is an empty input (a create with defaults)."""
    await create_type(client, "note", preset="list")
    result = await run(
        """mutation { batchElements(type: "note", items: [{op: "create"}]) {
          __typename ... on ElementList { items { title } } ... on ValidationError { fields { field message } }
        } }"""
    )
    assert result["batchElements"]["__typename"] == "ElementList", result
    assert [item["title"] for item in result["batchElements"]["items"]] == [""]


async def test_other_workspace_sees_only_its_types(app: FastAPI, client: httpx.AsyncClient) -> None:
    await lead_type(client)
    other = await make_tenant(app, "other")
    introspection = await _introspect(app, other.admin_key)
    assert build_client_schema(introspection).get_type("Lead") is None  # type: ignore[arg-type]
    async with make_client(app, other.admin_key) as other_client:
        _same(introspection, await _served_sdl(other_client))
