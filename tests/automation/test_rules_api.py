from typing import Any

import httpx

from tests.factories import default_pipeline, lead_type


def rule_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "R",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "add_comment", "params": {"text": "hi {{ title }}"}}],
    }
    body.update(overrides)
    return body


class TestCreateRule:
    async def test_the_rule_shape_round_trips(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        pipeline = await default_pipeline(client, "lead")
        stage = pipeline["stages"][1]
        body = rule_body(
            stage_id=stage["id"],
            trigger={"type": "element.entered_stage", "from_stage_id": pipeline["stages"][0]["id"]},
            condition={"field": "budget", "op": "gt", "value": 5},
            actions=[{"type": "create_task", "params": {"title": "Call {{ title }}", "due_in_hours": 4}}],
        )
        response = await client.post("/automation/rules", json=body)
        assert response.status_code == 201, response.text
        rule = response.json()
        assert rule["pipeline_id"] == pipeline["id"]
        assert rule["trigger"]["from_stage_id"] == pipeline["stages"][0]["id"]
        assert rule["actions"] == body["actions"]
        assert rule["enabled"] is True
        assert (await client.get(f"/automation/rules/{rule['id']}")).json() == {**rule, "webhook_secrets": None}

    async def test_every_problem_is_reported(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.post(
            "/automation/rules",
            json=rule_body(
                trigger={"type": "element.entered_stage"},
                actions=[
                    {"type": "move_to_stage", "params": {}},
                    {"type": "create_task", "params": {"title": "{{ unclosed"}},
                    {"type": "webhook", "params": {"url": "not-a-url"}},
                ],
            ),
        )
        assert response.status_code == 422, response.text
        fields = {e["field"] for e in response.json()["errors"]}
        assert {"stage_id", "actions[0].params", "actions[1].params.title", "actions[2].params.url"} <= fields

    async def test_unknown_trigger_type_cron_and_date_field(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        assert (await client.post("/automation/rules", json=rule_body(trigger={"type": "nope"}))).status_code == 422
        bad_cron = await client.post("/automation/rules", json=rule_body(trigger={"type": "schedule", "cron": "* *"}))
        assert bad_cron.status_code == 422
        bad_field = await client.post(
            "/automation/rules", json=rule_body(trigger={"type": "date_reached", "field": "budget"})
        )
        assert bad_field.status_code == 422
        good = await client.post(
            "/automation/rules",
            json=rule_body(trigger={"type": "date_reached", "field": "created_on", "offset_days": -1}),
        )
        assert good.status_code == 201, good.text
        scheduled = await client.post(
            "/automation/rules", json=rule_body(trigger={"type": "schedule", "cron": "0 9 * * 1-5"})
        )
        assert scheduled.status_code == 201, scheduled.text

    async def test_an_incoming_rule_gets_a_url(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=rule_body(trigger={"type": "webhook.received"}))).json()
        assert rule["hook_url"].startswith("/api/v1/hooks/")


class TestManageRules:
    async def test_enable_disable_order_update_delete(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        first = (await client.post("/automation/rules", json=rule_body(name="first"))).json()
        second = (await client.post("/automation/rules", json=rule_body(name="second"))).json()
        assert (await client.post(f"/automation/rules/{first['id']}/disable")).json()["enabled"] is False
        assert (await client.post(f"/automation/rules/{first['id']}/enable")).json()["enabled"] is True
        ordered = await client.put("/automation/rules/order", json={"ids": [second["id"], first["id"]]})
        assert ordered.status_code == 200, ordered.text
        assert [r["name"] for r in ordered.json()["items"]] == ["second", "first"]
        patched = await client.patch(f"/automation/rules/{first['id']}", json={"name": "renamed"})
        assert patched.json()["name"] == "renamed"
        assert (await client.delete(f"/automation/rules/{first['id']}")).status_code == 204
        assert (await client.get(f"/automation/rules/{first['id']}")).status_code == 404

    async def test_a_webhook_action_keeps_its_secret_across_updates(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        action = {"type": "webhook", "params": {"url": "https://example.com/h"}}
        rule = (await client.post("/automation/rules", json=rule_body(actions=[action]))).json()
        assert rule["webhook_secrets"]["0"].startswith("whsec_")
        patched = (await client.patch(f"/automation/rules/{rule['id']}", json={"actions": [action]})).json()
        assert patched["webhook_secrets"] is None  # same URL: the old secret is kept, nothing new to show

    async def test_isolation_and_roles(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=rule_body())).json()
        assert (await other_client.get(f"/automation/rules/{rule['id']}")).status_code == 404
        assert (await other_client.post(f"/automation/rules/{rule['id']}/disable")).status_code == 404
        assert (await viewer_client.post("/automation/rules", json=rule_body())).status_code == 403
        assert (await viewer_client.get("/automation/rules")).status_code == 200


class TestTasks:
    async def test_crud(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        created = await client.post("/tasks", json={"title": "Call back"})
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["status"] == "open"
        done = await client.patch(f"/tasks/{task['id']}", json={"status": "done"})
        assert done.json()["completed_at"] is not None
        assert [t["id"] for t in (await client.get("/tasks", params={"status": "done"})).json()["items"]] == [
            task["id"]
        ]
        assert (await other_client.get(f"/tasks/{task['id']}")).status_code == 404
        missing = await client.post("/tasks", json={"title": "x", "element_id": "00000000-0000-0000-0000-000000000000"})
        assert missing.status_code == 422
        assert (await client.delete(f"/tasks/{task['id']}")).status_code == 204


class TestIncomingHooks:
    async def test_wrong_token_is_404_and_not_json_is_422(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        rule = (await client.post("/automation/rules", json=rule_body(trigger={"type": "webhook.received"}))).json()
        async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as anonymous:
            assert (await anonymous.post("/api/v1/hooks/nope", json={})).status_code == 404
            assert (await anonymous.post(rule["hook_url"], content=b"[1]")).status_code == 422
            assert (await anonymous.post(rule["hook_url"], json={"a": 1})).status_code == 202
