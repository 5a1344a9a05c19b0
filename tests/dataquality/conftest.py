from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_client
from tests.factories import created

KeyedClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def role_client(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[KeyedClient]:
    """`await role_client(name="…", grants=[…], field_rules=[…])`: a client whose API key acts with that new role."""
    opened: list[httpx.AsyncClient] = []

    async def make(**role: Any) -> httpx.AsyncClient:
        created(await client.post("/roles", json=role))
        key = created(await client.post("/api-keys", json={"name": role["name"], "role": role["name"]}))["api_key"]
        http = make_client(app, key)
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()
