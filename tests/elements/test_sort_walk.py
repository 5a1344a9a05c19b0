"""Sorting on a custom field the filter requires: the page walks the read model's (value, id) index. Pages must be
exactly those of sorting every match in Python."""

import json
from typing import Any

import httpx

from tests.factories import lead_type

INDUSTRIES = ["it", "retail", "bank"]


async def _pages(client: httpx.AsyncClient, filter_: dict[str, Any], sort: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    params: dict[str, Any] = {"filter": json.dumps(filter_), "sort": sort, "limit": limit}
    while True:
        response = await client.get("/entity-types/lead/elements", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([e["title"] for e in body["items"]])
        if not body["next_cursor"]:
            return pages
        params["cursor"] = body["next_cursor"]


async def test_pages_sorted_on_a_filtered_field(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    items = []
    for i in range(30):
        values: dict[str, Any] = {"industry": INDUSTRIES[i % 3], "company_size": i % 4}
        if i % 5:
            values["budget"] = (i * 7) % 11  # ties on budget; some elements have none
        items.append({"op": "create", "data": {"title": f"e{i:02d}", "values": values}})
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    created = response.json()["items"]

    expected = sorted(
        (e for e in created if e["values"].get("industry") == "it" and e["values"].get("budget", -1) >= 3),
        key=lambda e: (e["values"]["budget"], e["id"]),
        reverse=True,
    )
    condition = {
        "and": [{"field": "industry", "op": "eq", "value": "it"}, {"field": "budget", "op": "gte", "value": 3}]
    }
    pages = await _pages(client, condition, "-budget", 2)
    assert [title for page in pages for title in page] == [e["title"] for e in expected]
    assert all(len(page) == 2 for page in pages[:-1])

    ascending = sorted(
        (e for e in created if 2 <= e["values"].get("budget", -1) <= 8),
        key=lambda e: (e["values"]["budget"], e["id"]),
    )
    between = {"field": "budget", "op": "between", "value": [2, 8]}
    pages = await _pages(client, between, "budget", 3)
    assert [title for page in pages for title in page] == [e["title"] for e in ascending]
