"""Moves and patches write the element's row as plain SQL on the session's connection (app/elements/rows.py): in
the request's transaction, in step with an `Element` the session already holds, and with the same refusals."""

import uuid

import httpx
from fastapi import FastAPI

from app.auth import service as auth_service
from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.schemas import ElementMove, ElementUpdate
from tests.conftest import Tenant
from tests.factories import create_element, lead_type


async def _actor(app: FastAPI, tenant: Tenant) -> Actor:
    async with app.state.sessionmaker() as session:
        return await auth_service.authenticate(session, f"Bearer {tenant.admin_key}", touch_seconds=10**9)


class TestTransaction:
    async def test_a_rolled_back_move_and_patch_leave_nothing_written(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="A", values={"budget": 10})
        element_id = uuid.UUID(element["id"])
        # Warms the type's cached metadata: with it, no ORM statement (which would send BEGIN) precedes the writes.
        assert (await client.post(f"/elements/{element_id}/move", json={"stage_code": "IN_PROGRESS"})).is_success
        actor = await _actor(app, tenant)
        async with app.state.sessionmaker() as session:
            moved = await element_service.move_element(session, actor, element_id, ElementMove(stage_code="SUCCESS"))
            patched = await element_service.update_element(
                session, actor, element_id, ElementUpdate(title="B", values={"budget": 20})
            )
            assert (moved.version, patched.version) == (3, 4)
            await session.rollback()
        current = (await client.get(f"/elements/{element['id']}")).json()
        assert (current["stage_code"], current["title"], current["values"], current["version"]) == (
            "IN_PROGRESS",
            "A",
            {"budget": 10},
            2,
        )
        history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
        assert [entry["kind"] for entry in history] == ["created", "moved"]


class TestHeldElement:
    async def test_an_element_the_session_holds_is_flushed_first_and_kept_in_step(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        """As routing and automation do: load the Element, change it, then move and update it in one transaction."""
        await lead_type(client)
        element = await create_element(client, "lead", title="A")
        element_id = uuid.UUID(element["id"])
        actor = await _actor(app, tenant)
        async with app.state.sessionmaker() as session:
            held = await element_service.load_element_row(session, actor, element_id, lock=True)
            held.title = "Renamed in memory"
            moved = await element_service.move_element(session, actor, element_id, ElementMove(stage_code="SUCCESS"))
            assert moved.title == "Renamed in memory"
            assert (held.version, held.stage_id) == (2, moved.stage_id)
            updated = await element_service.update_element(session, actor, element_id, ElementUpdate(amount=5))
            assert (held.version, held.amount) == (3, 5)
            await session.commit()
        current = (await client.get(f"/elements/{element['id']}")).json()
        assert (current["title"], current["stage_code"], current["amount"], current["version"]) == (
            "Renamed in memory",
            "SUCCESS",
            5.0,
            3,
        )
        assert updated.version == 3


class TestRefusals:
    async def test_another_workspaces_assignee_is_refused_and_nothing_written(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        stranger = (await other_client.post("/users", json={"name": "S", "email": "s@other.example"})).json()["id"]
        created = await client.post("/entity-types/lead/elements", json={"title": "x", "assigned_to": stranger})
        assert created.status_code == 422
        assert created.json()["errors"] == [
            {"field": "assigned_to", "message": f"user {stranger} not found in this workspace"}
        ]
        assert (await client.get("/entity-types/lead/elements")).json()["items"] == []
        element = await create_element(client, "lead", title="A")
        patched = await client.patch(
            f"/elements/{element['id']}", json={"title": "B", "assigned_to": stranger, "values": {"budget": 3}}
        )
        assert patched.status_code == 422
        current = (await client.get(f"/elements/{element['id']}")).json()
        assert (current["title"], current["assigned_to"], current["values"], current["version"]) == ("A", None, {}, 1)

    async def test_another_workspaces_stage_is_refused(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        await lead_type(other_client)
        foreign = await create_element(other_client, "lead")
        element = await create_element(client, "lead")
        response = await client.post(f"/elements/{element['id']}/move", json={"stage_id": foreign["stage_id"]})
        assert response.status_code == 422
        assert (await client.get(f"/elements/{element['id']}")).json()["version"] == 1


class TestStageDeletion:
    async def test_its_elements_move_with_their_own_versions_and_history(self, client: httpx.AsyncClient) -> None:
        """Elements at different versions are written one by one; at the same version, in one statement."""
        await lead_type(client)
        first, second, third = [await create_element(client, "lead", title=t) for t in ("1", "2", "3")]
        assert (await client.patch(f"/elements/{second['id']}", json={"title": "2b"})).status_code == 200
        pipeline = (await client.get(f"/pipelines/{first['pipeline_id']}")).json()
        target = next(s for s in pipeline["stages"] if s["code"] == "IN_PROGRESS")
        deleted = await client.delete(f"/stages/{first['stage_id']}", params={"move_to": target["id"]})
        assert deleted.status_code < 300, deleted.text
        for element, version in ((first, 2), (second, 3), (third, 2)):
            current = (await client.get(f"/elements/{element['id']}")).json()
            assert (current["stage_code"], current["version"]) == ("IN_PROGRESS", version)
            history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
            assert history[-1]["kind"] == "moved"
