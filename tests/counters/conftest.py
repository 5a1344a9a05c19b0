"""People acting through the API, and helpers to read counters.

People act with the access tokens a login gives them.
"""

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.access.service import find_role
from app.auth.tokens import AccessTokens
from app.counters import service as counters_service
from app.db import unit_of_work
from app.settings import Settings
from tests.conftest import Tenant, make_client
from tests.factories import create_type, created, default_pipeline

_TOKENS: dict[str, AccessTokens] = {}


@pytest.fixture(autouse=True)
def token_signer(settings: Settings) -> None:
    """Access tokens as a login issues them, signed with the app's secret (the login itself is tested in tests/auth)."""
    _TOKENS["signer"] = AccessTokens(settings.jwt_secret, settings.ACCESS_TOKEN_MINUTES * 60)


def person_token(tenant: Tenant, user_id: str) -> str:
    return _TOKENS["signer"].issue(uuid.UUID(user_id), tenant.workspace_id).token


async def role_id(app: FastAPI, tenant: Tenant, name: str) -> str:
    async with unit_of_work(app.state.sessionmaker) as session:
        return str((await find_role(session, tenant.workspace_id, name)).id)


async def add_person(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, name: str, role: str | None = "editor"
) -> dict[str, Any]:
    roles = [await role_id(app, tenant, role)] if role else []
    body = {"name": name, "email": f"{name}@example.com", "role_ids": roles}
    return created(await client.post("/users", json=body))


@dataclass
class Crm:
    """A `lead` type (stages NEW → IN_PROGRESS → SUCCESS / FAIL) and two editors, ann and bob."""

    app: FastAPI
    tenant: Tenant
    client: httpx.AsyncClient
    type_id: str
    pipeline: dict[str, Any]
    stages: dict[str, str]
    ann: str
    bob: str

    def person(self, user_id: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return make_client(self.app, person_token(self.tenant, user_id))

    async def counters(self, user_id: str) -> dict[str, Any]:
        """The person's counters as `GET /me/counters` answers them."""
        async with self.person(user_id) as http:
            response = await http.get("/me/counters")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def of(self, user_id: str, type_code: str = "lead") -> tuple[int, int, int]:
        """(new, overdue elements, overdue tasks) of one person and type."""
        body = await self.counters(user_id)
        row = next(t for t in body["types"] if t["entity_type"] == type_code)
        return row["new_elements"], row["overdue_elements"], row["overdue_tasks"]

    async def element(self, assigned_to: str | None, stage: str = "NEW", **body: Any) -> dict[str, Any]:
        data = {"title": "x", "assigned_to": assigned_to, "stage_code": stage, **body}
        return created(await self.client.post("/entity-types/lead/elements", json=data))

    async def move(self, element_id: str, stage: str) -> None:
        response = await self.client.post(f"/elements/{element_id}/move", json={"stage_code": stage})
        assert response.status_code == 200, response.text

    async def patch(self, element_id: str, **body: Any) -> None:
        response = await self.client.patch(f"/elements/{element_id}", json=body)
        assert response.status_code == 200, response.text

    async def set_limit(self, stage: str, minutes: int | None) -> None:
        response = await self.client.patch(f"/stages/{self.stages[stage]}", json={"time_limit_minutes": minutes})
        assert response.status_code == 200, response.text
        assert response.json()["time_limit_minutes"] == minutes

    async def sql(self, statement: str, **params: Any) -> None:
        async with unit_of_work(self.app.state.sessionmaker) as session:
            await session.execute(text(statement), params)

    async def fire(self, minutes_ahead: float) -> counters_service.Fired:
        """The counters' timer as if `minutes_ahead` minutes had passed, and what it marked in this workspace.

        The timer is global: other tests' workspaces in the same database may have deadlines due too, so what this
        tenant sees is counted from its own rows rather than from the timer's total."""
        now = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
        before = await self._marked()
        async with unit_of_work(self.app.state.sessionmaker) as session:
            await counters_service.fire_due(session, now=now)
        after = await self._marked()
        return counters_service.Fired(elements=after[0] - before[0], tasks=after[1] - before[1])

    async def _marked(self) -> tuple[int, int]:
        async with unit_of_work(self.app.state.sessionmaker) as session:
            row = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM elements WHERE workspace_id = :ws AND overdue_since IS NOT NULL),"
                        " (SELECT count(*) FROM tasks WHERE workspace_id = :ws AND overdue_since IS NOT NULL)"
                    ),
                    {"ws": self.tenant.workspace_id},
                )
            ).one()
        return int(row[0]), int(row[1])

    async def check_consistent(self) -> None:
        """The counters the triggers kept are the ones counted from scratch."""
        async with unit_of_work(self.app.state.sessionmaker) as session:
            stored = await counters_service.stored_counters(session, self.tenant.workspace_id)
            expected = await counters_service.expected_counters(session, self.tenant.workspace_id)
        assert stored == expected


@pytest.fixture
async def crm(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> Crm:
    entity_type = await create_type(client, "lead")
    pipeline = await default_pipeline(client, "lead")
    ann = await add_person(app, tenant, client, "ann")
    bob = await add_person(app, tenant, client, "bob")
    return Crm(
        app,
        tenant,
        client,
        entity_type["id"],
        pipeline,
        {s["code"]: s["id"] for s in pipeline["stages"]},
        ann["id"],
        bob["id"],
    )
