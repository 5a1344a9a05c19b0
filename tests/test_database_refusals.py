"""The database's refusals of client data are 4xx through REST and GraphQL alike, never a 500 or a masked error."""

import json
import random
import string
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request

from app.api.graphql.errors import refusal_of, to_error
from app.api.rest.problems import install_problem_handlers
from app.errors import from_database_error
from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type, lead_type


def _raise(sqlstate: str) -> str:
    return f"DO $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END $$"


async def _real_error(app: FastAPI, database_url: str, statement: str, driver: str) -> Exception:
    """The error PostgreSQL raises, as SQLAlchemy wraps it or as asyncpg raises it (reads that skip the ORM)."""
    if driver == "sqlalchemy":
        async with app.state.engine.connect() as connection:
            with pytest.raises(DBAPIError) as wrapped:
                await connection.execute(text(statement))
        return wrapped.value
    connection = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError) as raw:
            await connection.execute(statement)
    finally:
        await connection.close()
    return raw.value


def _rest_handler(app: FastAPI) -> Any:
    probe = FastAPI()
    install_problem_handlers(probe)
    return probe.exception_handlers


@pytest.mark.parametrize("driver", ["sqlalchemy", "asyncpg"])
@pytest.mark.parametrize(
    ("statement", "status", "slug"),
    [
        (_raise("54000"), 422, "validation-error"),  # program_limit_exceeded, e.g. an index row too large
        ("SELECT repeat('x', 1073741824)", 422, "validation-error"),  # a real 54000: requested length too large
        (_raise("54001"), 422, "validation-error"),  # statement too complex
        ("SELECT 1 / 0", 422, "validation-error"),  # class 22
        (_raise("23505"), 409, "conflict"),
        (_raise("42P01"), 500, "internal-error"),  # a bug of ours stays a 500
    ],
    ids=["54000", "54000-repeat", "54001", "22012", "23505", "42P01"],
)
async def test_sqlstates_map_to_the_same_problem_in_rest_and_graphql(
    app: FastAPI, database_url: str, statement: str, status: int, slug: str, driver: str
) -> None:
    error = await _real_error(app, database_url, statement, driver)
    handler = _rest_handler(app)[DBAPIError if driver == "sqlalchemy" else asyncpg.PostgresError]
    response = await handler(Request({"type": "http", "method": "GET", "headers": []}), error)
    assert response.status_code == status
    body = json.loads(response.body)
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    refusal = refusal_of(error)
    if status == 500:
        assert refusal is None
        assert from_database_error(error) is None
        return
    assert refusal is not None
    assert (int(refusal.status), refusal.slug) == (status, slug)
    assert to_error(refusal).code == slug


async def test_a_filter_value_the_database_refuses_is_a_422_through_rest(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    await create_element(client, "lead", title="kept")
    for field, value in (("title", "a\u0000"), ("email", "x\u0000@y.io")):
        response = await client.get(
            "/entity-types/lead/elements", params={"filter": json.dumps({"field": field, "op": "eq", "value": value})}
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/validation-error")


class TestGraphQL:
    async def test_a_mutation_the_database_refuses_is_an_error_as_data(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        result = await _graphql(
            app,
            tenant,
            'mutation($i: ElementCreateInput!) { createElement(type: "lead", input: $i) '
            "{ __typename ... on ValidationError { code message } } }",
            {"i": {"title": "a\u0000b"}},  # PostgreSQL stores no NUL in text (SQLSTATE 22021)
        )
        assert "errors" not in result, result
        assert result["data"]["createElement"] == {
            "__typename": "ValidationError",
            "code": "validation-error",
            "message": "A value cannot be stored",
        }
        listed = await client.get("/entity-types/lead/elements")
        assert listed.json()["items"] == []

    async def test_a_query_the_database_refuses_reports_the_rest_code_in_extensions(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        await create_element(client, "lead", title="kept")
        result = await _graphql(
            app,
            tenant,
            'query($f: JSON) { elements(type: "lead", filter: $f) { totalCount } }',
            {"f": {"field": "title", "op": "eq", "value": "a\u0000"}},
        )
        [error] = result["errors"]
        assert error["message"] == "A value cannot be stored"
        assert error["extensions"]["code"] == "validation-error"
        assert error["extensions"]["status"] == 422


async def _graphql(app: FastAPI, tenant: Tenant, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {tenant.admin_key}"},
    ) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _incompressible(length: int) -> str:
    """Random letters: PostgreSQL cannot compress them below an index entry's limit as it can `"x" * n`."""
    chooser = random.Random(11)
    return "".join(chooser.choice(string.ascii_letters + string.digits + " ") for _ in range(length))


async def test_a_100k_character_text_is_never_a_500(client: httpx.AsyncClient) -> None:
    await create_type(client, "note")
    await create_field(client, "note", "body", "text")
    response = await client.post(
        "/entity-types/note/elements", json={"title": "long", "values": {"body": _incompressible(100_000)}}
    )
    assert response.status_code in (201, 422), response.text


async def test_a_100k_character_text_is_stored_and_read_back(client: httpx.AsyncClient) -> None:
    await create_type(client, "note")
    await create_field(client, "note", "body", "text")
    body = _incompressible(100_000)
    response = await client.post("/entity-types/note/elements", json={"title": "long", "values": {"body": body}})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["values"]["body"] == body
    read = await client.get(f"/elements/{created['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["values"]["body"] == body
    updated = await client.patch(f"/elements/{created['id']}", json={"values": {"body": body[::-1]}})
    assert updated.status_code == 200, updated.text
    assert (await client.get(f"/elements/{created['id']}")).json()["values"]["body"] == body[::-1]
