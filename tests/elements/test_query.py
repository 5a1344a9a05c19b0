"""The SQL compiler and the in-memory evaluator give the same answer for the same filter."""

import random
from typing import Any

import httpx
import pytest

from app.kit.filters import evaluate, parse_filter
from tests.factories import lead_type

FILTERS: list[dict[str, Any]] = [
    {"field": "industry", "op": "eq", "value": "it"},
    {"field": "industry", "op": "ne", "value": "it"},
    {"field": "industry", "op": "nin", "value": ["it", "bank"]},
    {"field": "budget", "op": "gte", "value": 50},
    {"field": "budget", "op": "between", "value": [20, 60]},
    {"field": "budget", "op": "is_null", "value": True},
    {"field": "company_size", "op": "lt", "value": 5},
    {"field": "is_b2b", "op": "eq", "value": True},
    {"field": "is_b2b", "op": "ne", "value": True},
    {"field": "created_on", "op": "lte", "value": "2024-06-15"},
    {"field": "email", "op": "icontains", "value": "EXAMPLE"},
    {"field": "email", "op": "starts_with", "value": "a"},
    {"field": "title", "op": "contains", "value": "1"},
    {"not": {"field": "industry", "op": "in", "value": ["retail"]}},
    {"and": [{"field": "industry", "op": "eq", "value": "it"}, {"field": "budget", "op": "lt", "value": 40}]},
    {"or": [{"field": "is_b2b", "op": "is_null", "value": True}, {"field": "company_size", "op": "gte", "value": 15}]},
]


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    await lead_type(client)
    rng = random.Random(47)
    items = []
    for i in range(40):
        values: dict[str, Any] = {}
        if rng.random() < 0.8:
            values["industry"] = rng.choice(["it", "retail", "bank"])
        if rng.random() < 0.8:
            values["budget"] = rng.randint(0, 100)
        if rng.random() < 0.8:
            values["company_size"] = rng.randint(0, 20)
        if rng.random() < 0.7:
            values["is_b2b"] = rng.random() < 0.5
        if rng.random() < 0.7:
            values["created_on"] = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if rng.random() < 0.7:
            values["email"] = f"{rng.choice('abc')}{i}@{rng.choice(['example.com', 'mail.org'])}"
        items.append({"op": "create", "data": {"title": f"lead {i}", "values": values}})
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("flt", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
async def test_sql_and_memory_agree(
    client: httpx.AsyncClient, seeded: list[dict[str, Any]], flt: dict[str, Any]
) -> None:
    response = await client.post("/entity-types/lead/elements/search", json={"filter": flt, "limit": 500})
    assert response.status_code == 200, response.text
    from_sql = {e["id"] for e in response.json()["items"]}
    node = parse_filter(flt)
    in_memory = {e["id"] for e in seeded if evaluate(node, {"title": e["title"], **e["values"]})}
    assert from_sql == in_memory
