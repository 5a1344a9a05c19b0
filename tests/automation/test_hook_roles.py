"""Issue 11, item 1: an incoming hook's token is a secret (shown once, rotatable, never logged), and only an admin
adds a `webhook` action (it sends element data to any URL)."""

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from sqlalchemy import text

from app.automation.service import hook_token_hash
from app.db import unit_of_work
from tests.automation.test_rules_api import rule_body
from tests.conftest import make_client
from tests.factories import lead_type
from tests.graphql.conftest import http_client

HOOK_RULE = rule_body(trigger={"type": "webhook.received"})
WEBHOOK_ACTION = {"type": "webhook", "params": {"url": "https://example.com/in", "body": {"t": "{{ title }}"}}}


async def role_client(app: FastAPI, admin: httpx.AsyncClient, role: str) -> httpx.AsyncClient:
    response = await admin.post("/api-keys", json={"name": role, "role": role})
    assert response.status_code == 201, response.text
    return make_client(app, response.json()["api_key"])


def anonymous(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=client._transport, base_url="http://testserver")


class TestHookToken:
    async def test_shown_once_to_its_creator_and_never_to_a_reader(
        self, app: FastAPI, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        async with await role_client(app, client, "editor") as editor:
            created = await editor.post("/automation/rules", json=HOOK_RULE)
            assert created.status_code == 201, created.text
            rule = created.json()
            assert rule["hook_url"].startswith("/api/v1/hooks/")
            readers = [client, editor, viewer_client]
            for reader in readers:
                assert (await reader.get(f"/automation/rules/{rule['id']}")).json()["hook_url"] is None
                listed = (await reader.get("/automation/rules")).json()["items"]
                assert [r["hook_url"] for r in listed] == [None]
        for key in (client.headers["authorization"][7:], viewer_client.headers["authorization"][7:]):
            async with http_client(app, key) as gql:
                data = await gql.execute(GraphQLRequest("{ automationRules { hookUrl } }"))
                assert data["automationRules"] == [{"hookUrl": None}]
        async with anonymous(client) as outside:
            assert (await outside.post(rule["hook_url"], json={"a": 1})).status_code == 202
            # A sender's own Idempotency-Key is no API key's record: the hook takes it as any other header.
            keyed = await outside.post(rule["hook_url"], json={"a": 1}, headers={"Idempotency-Key": "evt_1"})
            assert keyed.status_code == 202, keyed.text

    async def test_only_its_digest_is_stored(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=HOOK_RULE)).json()
        token = rule["hook_url"].rsplit("/", 1)[1]
        async with unit_of_work(app.state.sessionmaker) as session:
            stored = await session.scalar(
                text("SELECT hook_token_hash FROM automation_rules WHERE id = :id"), {"id": rule["id"]}
            )
            # The migration hashes tokens handed out before with this same expression.
            in_sql = await session.scalar(text("SELECT encode(sha256(convert_to(:t, 'UTF8')), 'hex')"), {"t": token})
        assert stored == hook_token_hash(token) == in_sql
        assert token not in str(stored)

    async def test_rotation_gives_a_new_url_and_kills_the_old(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        viewer_client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
    ) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=HOOK_RULE)).json()
        path = f"/automation/rules/{rule['id']}/rotate-hook"
        assert (await viewer_client.post(path)).status_code == 403
        assert (await other_client.post(path)).status_code == 404
        async with await role_client(app, client, "editor") as editor:
            rotated = await editor.post(path)
        assert rotated.status_code == 200, rotated.text
        new_url = rotated.json()["hook_url"]
        assert new_url.startswith("/api/v1/hooks/")
        assert new_url != rule["hook_url"]
        async with anonymous(client) as outside:
            assert (await outside.post(rule["hook_url"], json={})).status_code == 404
            assert (await outside.post(new_url, json={})).status_code == 202
        plain = (await client.post("/automation/rules", json=rule_body())).json()
        assert (await client.post(f"/automation/rules/{plain['id']}/rotate-hook")).status_code == 409

    async def test_rotation_in_graphql(self, app: FastAPI, client: httpx.AsyncClient, viewer_client: Any) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=HOOK_RULE)).json()
        mutation = GraphQLRequest(
            "mutation($id: UUID!) { rotateAutomationRuleHook(id: $id) {"
            " __typename ... on AutomationRule { hookUrl } ... on Error { code } } }",
            variable_values={"id": rule["id"]},
        )
        async with http_client(app, viewer_client.headers["authorization"][7:]) as gql:
            refused = (await gql.execute(mutation))["rotateAutomationRuleHook"]
        assert refused["__typename"] != "AutomationRule"
        async with http_client(app, client.headers["authorization"][7:]) as gql:
            rotated = (await gql.execute(mutation))["rotateAutomationRuleHook"]
        assert rotated["hookUrl"].startswith("/api/v1/hooks/")
        assert rotated["hookUrl"] != rule["hook_url"]

    async def test_a_rule_that_stops_listening_loses_its_url(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=HOOK_RULE)).json()
        changed = await client.patch(f"/automation/rules/{rule['id']}", json={"trigger": {"type": "element.created"}})
        assert changed.json()["hook_url"] is None
        async with anonymous(client) as outside:
            assert (await outside.post(rule["hook_url"], json={})).status_code == 404
        back = await client.patch(f"/automation/rules/{rule['id']}", json={"trigger": {"type": "webhook.received"}})
        assert back.json()["hook_url"] not in (None, rule["hook_url"])

    @pytest.mark.parametrize("suffix", ["", "/extra"])
    async def test_the_token_is_not_in_the_access_log(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, suffix: str
    ) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=HOOK_RULE)).json()
        token = rule["hook_url"].rsplit("/", 1)[1]
        with caplog.at_level(logging.INFO, logger="stageflow.access"):
            async with anonymous(client) as outside:
                await outside.post(rule["hook_url"] + suffix, json={})
        logged = [r for r in caplog.records if r.name == "stageflow.access"]
        assert logged, "the request was not logged"
        for record in logged:
            fields = getattr(record, "fields", {})
            assert token not in str(fields)
            assert token not in record.getMessage()
            assert fields["path"].startswith("/api/v1/hooks/")


class TestWebhookActionNeedsAdmin:
    async def test_an_editor_cannot_add_one(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        async with await role_client(app, client, "editor") as editor:
            created = await editor.post("/automation/rules", json=rule_body(actions=[WEBHOOK_ACTION]))
            assert created.status_code == 403, created.text
            assert created.headers["content-type"] == "application/problem+json"
            plain = (await editor.post("/automation/rules", json=rule_body())).json()
            added = await editor.patch(
                f"/automation/rules/{plain['id']}", json={"actions": [*plain["actions"], WEBHOOK_ACTION]}
            )
            assert added.status_code == 403
            assert (await editor.get(f"/automation/rules/{plain['id']}")).json()["actions"] == plain["actions"]

    async def test_an_editor_keeps_an_admins_but_cannot_change_it(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=rule_body(actions=[WEBHOOK_ACTION]))).json()
        assert rule["webhook_secrets"]["0"].startswith("whsec_")
        async with await role_client(app, client, "editor") as editor:
            renamed = await editor.patch(
                f"/automation/rules/{rule['id']}", json={"name": "renamed", "actions": rule["actions"]}
            )
            assert renamed.status_code == 200, renamed.text
            assert (await editor.post(f"/automation/rules/{rule['id']}/disable")).status_code == 200
            for changed in (
                {**WEBHOOK_ACTION, "params": {**WEBHOOK_ACTION["params"], "url": "https://attacker.example/x"}},
                {**WEBHOOK_ACTION, "params": {**WEBHOOK_ACTION["params"], "body": {"all": "{{ values }}"}}},
                {**WEBHOOK_ACTION, "params": {**WEBHOOK_ACTION["params"], "secret": "whsec_known"}},
            ):
                refused = await editor.patch(f"/automation/rules/{rule['id']}", json={"actions": [changed]})
                assert refused.status_code == 403, changed
            twice = await editor.patch(f"/automation/rules/{rule['id']}", json={"actions": [WEBHOOK_ACTION] * 2})
            assert twice.status_code == 403

    async def test_graphql_refuses_it_too(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        async with await role_client(app, client, "editor") as editor:
            key = editor.headers["authorization"][7:]
        mutation = GraphQLRequest(
            "mutation($input: AutomationRuleCreateInput!) { createAutomationRule(input: $input) {"
            " __typename ... on Error { code } } }",
            variable_values={
                "input": {
                    "name": "R",
                    "entityType": "lead",
                    "trigger": {"type": "element.created"},
                    "actions": [WEBHOOK_ACTION],
                }
            },
        )
        async with http_client(app, key) as gql:
            result = (await gql.execute(mutation))["createAutomationRule"]
        assert result["__typename"] != "AutomationRule"
        assert (await client.get("/automation/rules")).json()["items"] == []
