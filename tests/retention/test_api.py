"""GET / PATCH / DELETE /workspace/retention: admins only, each workspace its own, over the instance's defaults."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.conftest import make_client

FORBIDDEN_ROLES = ("editor", "viewer")


def defaults(settings: Settings) -> dict[str, Any]:
    return {
        "runs_days": settings.RETENTION_RUNS_DAYS,
        "deliveries_days": settings.RETENTION_DELIVERIES_DAYS,
        "outbox_days": settings.RETENTION_OUTBOX_DAYS,
        "timeline_days": settings.RETENTION_TIMELINE_DAYS,
    }


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def retention(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/workspace/retention")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_defaults_then_overrides_then_back(client: httpx.AsyncClient, settings: Settings) -> None:
    assert await retention(client) == {**defaults(settings), "defaults": defaults(settings), "overridden": []}
    assert defaults(settings) == {"runs_days": 30, "deliveries_days": 30, "outbox_days": 7, "timeline_days": None}

    changed = await client.patch("/workspace/retention", json={"runs_days": 10, "timeline_days": 365})
    assert changed.status_code == 200, changed.text
    # Null keeps forever; fields not sent stay as they were.
    forever = await client.patch("/workspace/retention", json={"deliveries_days": None})
    assert forever.status_code == 200, forever.text
    expected = {
        "runs_days": 10,
        "deliveries_days": None,
        "outbox_days": 7,
        "timeline_days": 365,
        "defaults": defaults(settings),
        "overridden": ["runs_days", "deliveries_days", "timeline_days"],
    }
    assert forever.json() == expected
    assert await retention(client) == expected

    reset = await client.delete("/workspace/retention")
    assert reset.status_code == 200, reset.text
    assert (
        reset.json()
        == await retention(client)
        == {**defaults(settings), "defaults": defaults(settings), "overridden": []}
    )


@pytest.mark.parametrize(
    "body",
    [{"runs_days": 0}, {"outbox_days": -3}, {"timeline_days": 40_000}, {"runs_days": "soon"}, {"audit_days": 5}],
)
async def test_bad_values_are_refused(client: httpx.AsyncClient, settings: Settings, body: dict[str, Any]) -> None:
    problem(await client.patch("/workspace/retention", json=body), 422)
    assert (await retention(client))["overridden"] == []


async def test_only_admins(app: FastAPI, client: httpx.AsyncClient) -> None:
    for role in FORBIDDEN_ROLES:
        response = await client.post("/api-keys", json={"name": role, "role": role})
        assert response.status_code == 201, response.text
        async with make_client(app, response.json()["api_key"]) as other:
            problem(await other.get("/workspace/retention"), 403)
            problem(await other.patch("/workspace/retention", json={"runs_days": 1}), 403)
            problem(await other.delete("/workspace/retention"), 403)
    async with make_client(app, None) as anonymous:
        problem(await anonymous.get("/workspace/retention"), 401)
        problem(await anonymous.patch("/workspace/retention", json={"runs_days": 1}), 401)
    assert (await retention(client))["runs_days"] == 30  # nothing changed


async def test_each_workspace_its_own(client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
    assert (await client.patch("/workspace/retention", json={"runs_days": 2, "timeline_days": 90})).status_code == 200
    theirs = await retention(other_client)
    assert theirs["runs_days"] == 30
    assert theirs["timeline_days"] is None
    assert theirs["overridden"] == []
    assert (await other_client.delete("/workspace/retention")).status_code == 200
    ours = await retention(client)
    assert ours["runs_days"] == 2
    assert ours["timeline_days"] == 90
