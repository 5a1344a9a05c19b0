import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.service import BearerTokens
from tests.conftest import Tenant, make_client
from tests.factories import create_user, created


@dataclass
class Person:
    id: str
    token: str
    http: httpx.AsyncClient


@dataclass
class People:
    """Ann (Europe/Berlin) and Bob (America/New_York): people acting with their access tokens, holding a custom role
    of level editor that grants nothing on elements, so each reads and changes their own calendar only."""

    ann: Person
    bob: Person


def access_token(app: FastAPI, tenant: Tenant, user_id: str) -> str:
    """The access token `POST /auth/login` would give the user (issued directly: no password hashing per test)."""
    tokens: BearerTokens = app.state.bearer_tokens
    return tokens.access.issue(uuid.UUID(user_id), tenant.workspace_id).token


@pytest.fixture
async def people(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> AsyncIterator[People]:
    made: dict[str, Person] = {}
    role = created(await client.post("/roles", json={"name": "Calendar user", "level": "editor"}))
    for name, timezone in (("Ann", "Europe/Berlin"), ("Bob", "America/New_York")):
        user = await create_user(client, name, timezone=timezone, role_ids=[role["id"]])
        token = access_token(app, tenant, user["id"])
        made[name.lower()] = Person(user["id"], token, make_client(app, token))
    try:
        yield People(**made)
    finally:
        for person in made.values():
            await person.http.aclose()


async def create_event(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(await http.post("/calendar/events", json={"title": "Meeting", **body}))


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"] for e in response.json()["errors"]}
