"""Logging in over GraphQL (`login`, `refreshToken`, `logout`, `me`), with no Authorization where none is needed, and
WebSocket subscriptions opened with a person's access token (a real uvicorn server, as in tests/graphql)."""

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from fastapi import FastAPI
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXAsyncTransport
from websockets.typing import Subprotocol

from app.settings import Settings
from tests.access.test_subscription_scope import subscribed
from tests.auth.conftest import Person, add_person, new_address
from tests.conftest import Tenant
from tests.factories import create_type
from tests.gql_asgi import asgi_transport
from tests.graphql.test_subscriptions import _collect, server

__all__ = ["server"]  # the module-scoped live server fixture

LOGIN = """
mutation($email: String!, $password: String!, $workspace: UUID) {
  login(input: {email: $email, password: $password, workspaceId: $workspace}) {
    __typename
    ... on TokenPair { accessToken tokenType expiresIn refreshToken }
    ... on AuthenticationError { message code retryAfter }
    ... on ValidationError { message code fields { field message } }
  }
}
"""
REFRESH = """
mutation($token: String!) {
  refreshToken(refreshToken: $token) {
    __typename
    ... on TokenPair { accessToken refreshToken expiresIn }
    ... on AuthenticationError { message code }
  }
}
"""
LOGOUT = "mutation($token: String!) { logout(refreshToken: $token) }"
ME = "{ me { id workspaceId name email departmentId level roles { name level builtin } } }"


def gql_client(app: FastAPI, token: str | None = None, *, address: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = HTTPXAsyncTransport(
        url="http://testserver/graphql",
        headers=headers,
        transport=asgi_transport(app, client=(address or new_address(), 40000)),
    )
    return Client(transport=transport)


async def run(app: FastAPI, query: str, bearer: str | None = None, **variables: Any) -> dict[str, Any]:
    async with gql_client(app, bearer) as session:
        result: dict[str, Any] = await session.execute(GraphQLRequest(query, variable_values=variables))
        return result


async def login(app: FastAPI, person: Person, **changes: Any) -> dict[str, Any]:
    variables = {"email": person.email, "password": person.password, "workspace": str(person.workspace_id), **changes}
    result: dict[str, Any] = (await run(app, LOGIN, **variables))["login"]
    return result


class TestFlow:
    async def test_login_me_refresh_and_logout(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        person = await add_person(app, tenant, client, role="editor")
        pair = await login(app, person)
        assert pair["__typename"] == "TokenPair"
        assert pair["tokenType"] == "bearer"
        assert pair["expiresIn"] == 15 * 60
        me = (await run(app, ME, pair["accessToken"]))["me"]
        assert (me["id"], me["email"], me["level"]) == (person.id, person.email, "editor")
        assert me["workspaceId"] == str(tenant.workspace_id)
        assert me["roles"] == [{"name": "editor", "level": "editor", "builtin": True}]

        rotated = (await run(app, REFRESH, token=pair["refreshToken"]))["refreshToken"]
        assert rotated["__typename"] == "TokenPair"
        assert rotated["refreshToken"] != pair["refreshToken"]
        assert (await run(app, ME, rotated["accessToken"]))["me"]["id"] == person.id

        assert (await run(app, LOGOUT, token=rotated["refreshToken"]))["logout"] is True
        after = (await run(app, REFRESH, token=rotated["refreshToken"]))["refreshToken"]
        assert after["__typename"] == "AuthenticationError"
        assert after["code"] == "unauthorized"

    async def test_reusing_a_rotated_refresh_token_ends_the_login(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        pair = await login(app, await add_person(app, tenant, client))
        rotated = (await run(app, REFRESH, token=pair["refreshToken"]))["refreshToken"]
        reused = (await run(app, REFRESH, token=pair["refreshToken"]))["refreshToken"]
        assert reused["__typename"] == "AuthenticationError"
        assert "already used" in reused["message"]
        newest = (await run(app, REFRESH, token=rotated["refreshToken"]))["refreshToken"]
        assert newest["__typename"] == "AuthenticationError"

    async def test_refreshing_with_a_lapsed_token_still_attached_works(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        pair = await login(app, await add_person(app, tenant, client))
        async with gql_client(app, "lapsed.access.token") as session:
            result = await session.execute(
                GraphQLRequest(REFRESH, variable_values={"token": pair["refreshToken"]}, operation_name=None)
            )
        assert result["refreshToken"]["__typename"] == "TokenPair"

    async def test_the_access_token_reaches_the_workspace_schema(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        pair = await login(app, await add_person(app, tenant, client))
        created = await run(
            app, 'mutation { createDeal(input: {title: "By a person"}) { ... on Deal { id } } }', pair["accessToken"]
        )
        assert created["createDeal"]["id"]
        listed = await run(app, "{ deals { edges { node { id title } } } }", pair["accessToken"])
        assert [e["node"]["title"] for e in listed["deals"]["edges"]] == ["By a person"]


class TestRefusals:
    async def test_a_wrong_password_and_an_unknown_user_answer_the_same(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        wrong = await login(app, person, password="not the password")
        unknown = await login(app, person, email=f"nobody-{uuid.uuid4().hex[:6]}@example.com")
        assert wrong == unknown
        assert wrong["__typename"] == "AuthenticationError"
        assert wrong["code"] == "unauthorized"
        assert wrong["retryAfter"] is None

    async def test_repeated_failures_are_limited(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        person = await add_person(app, tenant, client)
        for n in range(5):
            assert (await login(app, person, password=f"wrong-{n}"))["code"] == "unauthorized"
        limited = await login(app, person)
        assert limited["__typename"] == "AuthenticationError"
        assert limited["code"] == "too-many-requests"
        assert 0 < limited["retryAfter"] <= 15 * 60

    async def test_bad_input_is_a_validation_error(self, app: FastAPI) -> None:
        result = await run(app, LOGIN, email="x" * 100_000, password="p")
        assert result["login"]["__typename"] == "ValidationError"
        assert result["login"]["fields"][0]["field"] == "email"

    async def test_without_a_token_only_logging_in_runs(self, app: FastAPI, tenant: Tenant) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(new_address(), 1)), base_url="http://t"
        ) as http:
            for query in (
                "{ entityTypes { code } }",
                "{ me { id } }",
                'mutation { login(input: {email: "a@b.c", password: "p"}) { __typename } users { id } }',
                'mutation { createEntityType(input: {code: "x", title: "X"}) { __typename } }',
                "not graphql at all",
            ):
                response = await http.post("/graphql", json={"query": query})
                assert response.status_code == 401, query
                assert response.headers["content-type"] == "application/problem+json"
            # Two operations in one document: the one named runs, and decides.
            document = 'mutation A { logout(refreshToken: "x") } query B { users { id } }'
            assert (await http.post("/graphql", json={"query": document, "operationName": "B"})).status_code == 401
            ran = await http.post("/graphql", json={"query": document, "operationName": "A"})
            assert ran.status_code == 200
            assert ran.json() == {"data": {"logout": True}}

    async def test_me_is_forbidden_for_an_api_key(self, app: FastAPI, tenant: Tenant) -> None:
        with pytest.raises(TransportQueryError) as refused:
            await run(app, ME, tenant.admin_key)
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "forbidden"

    async def test_a_bad_token_is_401(self, app: FastAPI, settings: Settings) -> None:
        forged = jwt.encode(
            {"sub": str(uuid.uuid4()), "ws": str(uuid.uuid4()), "exp": int(time.time()) + 60, "typ": "access"},
            "not the secret, but long enough for HS256",
            algorithm="HS256",
        )
        with pytest.raises(TransportServerError):
            await run(app, ME, forged)


# --- subscriptions over WebSocket, on a live server ----------------------------------------------------------------

SUBSCRIBE = 'subscription { elementEvents(type: "deal") { eventType elementId } }'


@pytest.mark.slow
async def test_a_subscription_opened_with_an_access_token_receives_events(
    server: str, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await create_type(client, "deal")
    pair = await login(app, await add_person(app, tenant, client))
    events: list[dict[str, Any]] = []
    listener = asyncio.create_task(_collect(server, pair["accessToken"], {"type": "deal"}, "element.created", events))
    await subscribed(str(settings.REDIS_URL), tenant.workspace_id)
    created = await client.post("/entity-types/deal/elements", json={"title": "Live"})
    assert created.status_code == 201, created.text
    await asyncio.wait_for(listener, timeout=15)
    assert [(e["eventType"], e["elementId"]) for e in events] == [("element.created", created.json()["id"])]


async def _open(server: str, token: str) -> Any:
    connection = await websockets.connect(f"ws://{server}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")])
    await connection.send(
        orjson.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}).decode()
    )
    return connection


@pytest.mark.slow
async def test_a_websocket_with_a_forged_or_expired_token_is_refused(server: str, settings: Settings) -> None:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "ws": str(uuid.uuid4()), "iss": "stageflow", "jti": "x", "typ": "access"}
    for token in (
        jwt.encode({**claims, "iat": now, "exp": now + 60}, "another secret, long enough for HS256", "HS256"),
        jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, settings.jwt_secret, "HS256"),
    ):
        connection = await _open(server, token)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


@pytest.mark.slow
async def test_a_websocket_closes_when_its_token_lapses(
    server: str, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await create_type(client, "deal")
    person = await add_person(app, tenant, client)
    now = int(time.time())
    claims = {"sub": person.id, "ws": str(tenant.workspace_id), "iss": "stageflow", "jti": "y", "typ": "access"}
    token = jwt.encode({**claims, "iat": now, "exp": now + 2}, settings.jwt_secret, "HS256")
    connection = await _open(server, token)
    assert orjson.loads(await asyncio.wait_for(connection.recv(), timeout=10))["type"] == "connection_ack"
    await connection.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}).decode())
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(connection.recv(), timeout=15)  # no event comes: the server closes when the token lapses
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "Token expired")
    assert time.monotonic() - started < 10
