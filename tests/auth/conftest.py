"""People who log in: users with a password and a role, and clients that come from an address of their own (login
failures are counted per address, in the tests' Redis, which outlives a test session)."""

import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from app.access.service import find_role
from app.db import unit_of_work
from tests.conftest import Tenant
from tests.factories import created

PASSWORD = "correct horse battery staple"


def new_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def anonymous_client(app: FastAPI, address: str | None = None, *, token: str | None = None) -> httpx.AsyncClient:
    """A client with no API key, from its own address (or the one given), optionally carrying a token."""
    transport = httpx.ASGITransport(app=app, client=(address or new_address(), 40000))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1", headers=headers)


async def role_id(app: FastAPI, tenant: Tenant, name: str) -> str:
    async with unit_of_work(app.state.sessionmaker) as session:
        return str((await find_role(session, tenant.workspace_id, name)).id)


@dataclass
class Person:
    id: str
    email: str
    password: str
    workspace_id: uuid.UUID


async def add_person(
    app: FastAPI, tenant: Tenant, admin: httpx.AsyncClient, *, role: str | None = "admin", **body: Any
) -> Person:
    email = body.pop("email", f"person-{uuid.uuid4().hex[:10]}@example.com")
    password = body.pop("password", PASSWORD)
    roles = [await role_id(app, tenant, role)] if role else []
    user = created(
        await admin.post(
            "/users", json={"name": "Pat Person", "email": email, "password": password, "role_ids": roles, **body}
        )
    )
    return Person(user["id"], email, password, tenant.workspace_id)


async def log_in(app: FastAPI, person: Person, *, address: str | None = None) -> dict[str, Any]:
    """The token pair of a successful login."""
    async with anonymous_client(app, address) as http:
        response = await http.post(
            "/auth/login",
            json={"workspace_id": str(person.workspace_id), "email": person.email, "password": person.password},
        )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair
