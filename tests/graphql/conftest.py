"""A real GraphQL client (gql) against the app: over httpx's ASGI transport, or a real uvicorn server."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.httpx import HTTPXAsyncTransport

from tests.conftest import Tenant
from tests.gql_asgi import asgi_transport

Run = Callable[..., Awaitable[dict[str, Any]]]


def http_client(app: FastAPI, key: str | None, *, url: str = "http://testserver/graphql") -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = HTTPXAsyncTransport(url=url, headers=headers, transport=asgi_transport(app))
    return Client(transport=transport)


@pytest.fixture
async def gql_session(app: FastAPI, tenant: Tenant) -> AsyncIterator[AsyncClientSession]:
    async with http_client(app, tenant.admin_key) as session:
        yield session


@pytest.fixture
def run(gql_session: AsyncClientSession) -> Run:
    """`await run(query, **variables)` -> the result's data; a GraphQL error raises TransportQueryError."""

    async def execute(query: str, **variables: Any) -> dict[str, Any]:
        result: dict[str, Any] = await gql_session.execute(GraphQLRequest(query, variable_values=variables))
        return result

    return execute
