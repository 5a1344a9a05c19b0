"""Builders shared by the card layout tests: a `dishwasher` type with two pipelines, layouts, roles and keys."""

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from tests.conftest import make_client
from tests.factories import create_field, create_type, created, default_pipeline


@dataclass
class Washers:
    """A `dishwasher` type (pipelines on) with fields capacity, energy_class, notes; pipelines A (its own) and the
    default one; an element in each."""

    type: dict[str, Any]
    pipeline_a: str
    pipeline_default: str
    in_a: dict[str, Any]
    in_default: dict[str, Any]


async def washers(client: httpx.AsyncClient) -> Washers:
    entity_type = await create_type(client, "dishwasher", settings={"pipelines_enabled": True})
    await create_field(client, "dishwasher", "capacity", "integer", label="Capacity")
    await create_field(client, "dishwasher", "energy_class", "enum", options=[{"value": "A"}, {"value": "B"}])
    await create_field(client, "dishwasher", "notes", "text")
    default = await default_pipeline(client, "dishwasher")
    pipeline_a = created(await client.post("/entity-types/dishwasher/pipelines", json={"title": "Pipeline A"}))
    in_a = created(
        await client.post(
            "/entity-types/dishwasher/elements",
            json={
                "title": "DW-A",
                "pipeline_id": pipeline_a["id"],
                "amount": 499.9,
                "values": {"capacity": 12, "energy_class": "A", "notes": "quiet"},
            },
        )
    )
    in_default = created(
        await client.post("/entity-types/dishwasher/elements", json={"title": "DW-B", "values": {"capacity": 9}})
    )
    return Washers(entity_type, pipeline_a["id"], default["id"], in_a, in_default)


async def layout(client: httpx.AsyncClient, type_code: str = "dishwasher", **body: Any) -> dict[str, Any]:
    return created(await client.post(f"/entity-types/{type_code}/layouts", json={"name": "Card", **body}))


def sections(card: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """A card's (or layout's) sections as (code, field codes)."""
    return [(s["code"], [f if isinstance(f, str) else f["code"] for f in s["fields"]]) for s in card["sections"]]


async def role(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    return created(await client.post("/roles", json={"name": name, "level": "viewer", **body}))


async def client_with_role(app: FastAPI, admin: httpx.AsyncClient, role_name: str) -> httpx.AsyncClient:
    key = created(await admin.post("/api-keys", json={"name": f"key of {role_name}", "role": role_name}))
    return make_client(app, key["api_key"])


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body
