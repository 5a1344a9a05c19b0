"""Plain async builders over the REST API."""

from typing import Any

import httpx


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_type(client: httpx.AsyncClient, code: str = "lead", **body: Any) -> dict[str, Any]:
    response = await client.post("/entity-types", json={"code": code, "title": code.title(), **body})
    return created(response)


async def create_field(client: httpx.AsyncClient, type_code: str, code: str, type: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/entity-types/{type_code}/fields", json={"code": code, "type": type, **body})
    return created(response)


async def create_element(client: httpx.AsyncClient, type_code: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/entity-types/{type_code}/elements", json=body)
    return created(response)


async def default_pipeline(client: httpx.AsyncClient, type_code: str) -> dict[str, Any]:
    response = await client.get(f"/entity-types/{type_code}/pipelines")
    assert response.status_code == 200, response.text
    return next(p for p in response.json()["items"] if p["is_default"])


async def lead_type(client: httpx.AsyncClient) -> dict[str, Any]:
    """A `lead` type with a few typed fields, used by many tests."""
    entity_type = await create_type(client, "lead")
    await create_field(client, "lead", "budget", "decimal", min=0)
    await create_field(
        client, "lead", "industry", "enum", options=[{"value": "it"}, {"value": "retail"}, {"value": "bank"}]
    )
    await create_field(client, "lead", "company_size", "integer")
    await create_field(client, "lead", "email", "email")
    await create_field(client, "lead", "created_on", "date")
    await create_field(client, "lead", "is_b2b", "boolean")
    return entity_type


async def create_user(client: httpx.AsyncClient, name: str, tier: str = "regular", **body: Any) -> dict[str, Any]:
    email = body.pop("email", f"{name.lower().replace(' ', '.')}@example.com")
    response = await client.post("/users", json={"name": name, "email": email, "tier": tier, **body})
    return created(response)
