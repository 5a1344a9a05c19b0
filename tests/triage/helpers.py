"""A `ticket` type (text `body`, enum `category` and `urgency`) with generated labelled requests of known answer."""

from typing import Any

import httpx

from bench.triage_eval import CATEGORIES, URGENCY_WEIGHTS, generate
from tests.factories import create_field, create_type

SOLVED = "SUCCESS"


async def ticket_type(client: httpx.AsyncClient) -> None:
    await create_type(client, "ticket")
    await create_field(client, "ticket", "body", "text")
    await create_field(client, "ticket", "category", "enum", options=[{"value": c} for c in CATEGORIES])
    await create_field(client, "ticket", "urgency", "enum", options=[{"value": u} for u in URGENCY_WEIGHTS])
    await create_field(client, "ticket", "channel", "string")


async def add_requests(
    client: httpx.AsyncClient, requests: list[dict[str, str]], *, labelled: bool = True, stage: str | None = SOLVED
) -> list[dict[str, Any]]:
    items = []
    for index, request in enumerate(requests):
        values: dict[str, Any] = {"body": request["text"]}
        if labelled:
            values.update(category=request["category"], urgency=request["urgency"])
        data: dict[str, Any] = {"title": f"Request {index}: {request['text'][:40]}", "values": values}
        if stage is not None:
            data["stage_code"] = stage
        items.append({"op": "create", "data": data})
    response = await client.post("/entity-types/ticket/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    created: list[dict[str, Any]] = response.json()["items"]
    return created


async def configure(client: httpx.AsyncClient) -> dict[str, Any]:
    body = {"text_fields": ["body"], "category_field": "category", "urgency_field": "urgency"}
    response = await client.put("/entity-types/ticket/triage", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def trained_tickets(client: httpx.AsyncClient, *, encoder: str = "tfidf", count: int = 240) -> dict[str, Any]:
    """The type, `count` labelled solved requests (seed 11), and a model trained on them with `encoder`."""
    await ticket_type(client)
    await add_requests(client, generate(count, 11, unseen=False))
    await configure(client)
    response = await client.post("/entity-types/ticket/triage/train", json={"encoder": encoder})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
