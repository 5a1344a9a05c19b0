"""Issue 11, item 1: an Idempotency-Key record belongs to the API key that made it (and its role), and an answer
that carried a secret shown once is neither stored in plain text nor replayed."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.auth.actor import Actor
from app.auth.models import Role
from app.auth.schemas import ApiKeyCreated
from app.automation.schemas import RuleRead
from app.db import unit_of_work
from app.errors import Forbidden
from app.idempotency import service as idempotency
from app.idempotency.models import IdempotencyKey
from app.kit.shown_once import shown_once_fields
from tests.automation.test_rules_api import rule_body
from tests.conftest import Tenant, make_client
from tests.factories import lead_type


async def new_key(admin: httpx.AsyncClient, role: str) -> dict[str, Any]:
    response = await admin.post("/api-keys", json={"name": role, "role": role})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stored_body(app: FastAPI, workspace_id: uuid.UUID, key: str) -> bytes:
    async with unit_of_work(app.state.sessionmaker) as session:
        row = await session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
        )
    assert row is not None
    assert row.response_body is not None
    return row.response_body


class TestOwnership:
    @pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
    async def test_another_key_is_refused_and_never_sees_the_answer(
        self, app: FastAPI, client: httpx.AsyncClient, role: str
    ) -> None:
        await lead_type(client)
        headers = {"Idempotency-Key": f"create-{role}"}
        first = await client.post("/entity-types/lead/elements", json={"title": "ACME"}, headers=headers)
        assert first.status_code == 201
        other = await new_key(client, role)
        async with make_client(app, other["api_key"]) as thief:
            replay = await thief.post("/entity-types/lead/elements", json={"title": "ACME"}, headers=headers)
        assert replay.status_code == 422, replay.text
        assert replay.headers["content-type"] == "application/problem+json"
        assert first.json()["id"] not in replay.text
        assert "idempotent-replayed" not in replay.headers
        assert [e["id"] for e in (await client.get("/entity-types/lead/elements")).json()["items"]] == [
            first.json()["id"]
        ]
        again = await client.post("/entity-types/lead/elements", json={"title": "ACME"}, headers=headers)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"

    async def test_a_viewer_cannot_replay_an_admins_new_key(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        headers = {"Idempotency-Key": "make-admin"}
        made = await client.post("/api-keys", json={"name": "ops", "role": "admin"}, headers=headers)
        assert made.status_code == 201
        replay = await viewer_client.post("/api-keys", json={"name": "ops", "role": "admin"}, headers=headers)
        assert replay.status_code in (409, 422)
        assert made.json()["api_key"] not in replay.text
        assert made.json()["id"] not in replay.text

    async def test_a_revoked_key_cannot_replay(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        editor = await new_key(client, "editor")
        headers = {"Idempotency-Key": "by-editor"}
        async with make_client(app, editor["api_key"]) as http:
            assert (await http.post("/entity-types/lead/elements", json={}, headers=headers)).status_code == 201
            assert (await client.delete(f"/api-keys/{editor['id']}")).status_code == 204
            assert (await http.post("/entity-types/lead/elements", json={}, headers=headers)).status_code == 401

    async def test_the_role_is_checked_on_replay(self, app: FastAPI, tenant: Tenant) -> None:
        key_id = uuid.uuid4()
        as_admin = Actor(workspace_id=tenant.workspace_id, role=Role.admin, api_key_id=key_id)
        as_viewer = Actor(workspace_id=tenant.workspace_id, role=Role.viewer, api_key_id=key_id)
        async with unit_of_work(app.state.sessionmaker) as session:
            assert await idempotency.claim(session, as_admin, "k", "f", ttl_hours=1) is None
            await idempotency.complete(session, tenant.workspace_id, "k", 201, b"{}")
        async with unit_of_work(app.state.sessionmaker) as session:
            with pytest.raises(Forbidden):
                await idempotency.claim(session, as_viewer, "k", "f", ttl_hours=1)
            replayed = await idempotency.claim(session, as_admin, "k", "f", ttl_hours=1)
        assert replayed == idempotency.StoredResponse(201, b"{}")


class TestSecretsAreNotKept:
    async def test_new_api_key(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": "new-key"}
        made = await client.post("/api-keys", json={"name": "ci"}, headers=headers)
        secret = made.json()["api_key"]
        assert secret.encode() not in await stored_body(app, tenant.workspace_id, "new-key")
        replay = await client.post("/api-keys", json={"name": "ci"}, headers=headers)
        assert replay.status_code == 409, replay.text
        assert replay.headers["content-type"] == "application/problem+json"
        assert secret not in replay.text
        assert made.json()["id"] in replay.json()["detail"]
        assert len((await client.get("/api-keys")).json()["items"]) == 2  # the tenant's admin key and this one

    async def test_webhook_subscription_secret(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": "new-hook"}
        body = {"url": "https://example.com/in", "events": ["*"]}
        made = await client.post("/webhooks", json=body, headers=headers)
        assert made.status_code == 201, made.text
        assert made.json()["secret"].encode() not in await stored_body(app, tenant.workspace_id, "new-hook")
        replay = await client.post("/webhooks", json=body, headers=headers)
        assert replay.status_code == 409
        assert made.json()["secret"] not in replay.text

    async def test_rule_webhook_secrets_and_hook_url(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        body = rule_body(
            trigger={"type": "webhook.received"},
            actions=[{"type": "webhook", "params": {"url": "https://example.com/in"}}],
        )
        made = await client.post("/automation/rules", json=body, headers={"Idempotency-Key": "rule"})
        assert made.status_code == 201, made.text
        stored = await stored_body(app, tenant.workspace_id, "rule")
        assert made.json()["webhook_secrets"]["0"].encode() not in stored
        assert made.json()["hook_url"].rsplit("/", 1)[1].encode() not in stored
        replay = await client.post("/automation/rules", json=body, headers={"Idempotency-Key": "rule"})
        assert replay.status_code == 409
        assert made.json()["hook_url"] not in replay.text

    async def test_an_answer_without_a_secret_still_replays(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        made = await client.post("/automation/rules", json=rule_body(), headers={"Idempotency-Key": "plain"})
        replay = await client.post("/automation/rules", json=rule_body(), headers={"Idempotency-Key": "plain"})
        assert replay.status_code == 201
        assert replay.json() == made.json()
        assert replay.headers["idempotent-replayed"] == "true"


SECRET_NAMES = {"api_key", "secret", "webhook_secrets", "hook_url", "token", "password"}


def test_every_secret_looking_response_field_is_marked_shown_once(app: FastAPI) -> None:
    """A new secret in an answer must be marked, or the Idempotency-Key store would keep it in plain text (the
    OpenAPI `x-shown-once` flag and the store read the same marker)."""
    marked = []
    for name, schema in app.openapi()["components"]["schemas"].items():
        for prop, spec in (schema.get("properties") or {}).items():
            if prop in SECRET_NAMES and not spec.get("writeOnly"):  # a request field is never stored
                assert spec.get("x-shown-once") is True, f"{name}.{prop}"
                marked.append(f"{name}.{prop}")
    assert {"ApiKeyCreated.api_key", "SubscriptionCreated.secret", "RuleRead.hook_url"} <= set(marked)
    assert shown_once_fields(ApiKeyCreated) == {"api_key"}
    assert shown_once_fields(RuleRead) == {"hook_url", "webhook_secrets"}
