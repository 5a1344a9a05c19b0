"""End to end: REST changes -> outbox -> dispatcher -> arq worker (a real subprocess) -> actions."""

import base64
import hashlib
import hmac
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.automation.harness import hook_server, running_worker, wait_for
from tests.factories import create_element, create_field, create_type, default_pipeline, lead_type


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings) as process:
        yield process


def stage_id(pipeline: dict[str, Any], code: str) -> str:
    return str(next(s["id"] for s in pipeline["stages"] if s["code"] == code))


async def runs_of(client: httpx.AsyncClient, rule_id: str) -> list[dict[str, Any]]:
    response = await client.get("/automation/runs", params={"rule_id": rule_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_entering_a_stage_creates_a_task_and_calls_a_signed_webhook(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    pipeline = await default_pipeline(client, "lead")
    with hook_server() as server:
        response = await client.post(
            "/automation/rules",
            json={
                "name": "Call new work",
                "entity_type": "lead",
                "stage_id": stage_id(pipeline, "IN_PROGRESS"),
                "trigger": {"type": "element.entered_stage"},
                "condition": {"field": "budget", "op": "gte", "value": 100},
                "actions": [
                    {
                        "type": "create_task",
                        "params": {"title": "Call {{ title }} ({{ values.budget }})", "due_in_hours": 4},
                    },
                    {"type": "webhook", "params": {"url": server.url()}},
                ],
            },
        )
        assert response.status_code == 201, response.text
        rule = response.json()
        secret = rule["webhook_secrets"]["1"]
        assert secret.startswith("whsec_")
        assert "secret" not in rule["actions"][1]["params"]
        element = await create_element(client, "lead", title="ACME", values={"budget": 500})
        small = await create_element(client, "lead", title="Tiny", values={"budget": 5})
        for target in (element, small):
            moved = await client.post(f"/elements/{target['id']}/move", json={"stage_code": "IN_PROGRESS"})
            assert moved.status_code == 200, moved.text

        async def finished() -> list[dict[str, Any]]:
            runs = await runs_of(client, rule["id"])
            done = [r for r in runs if r["status"] in ("succeeded", "skipped", "failed")]
            return runs if len(done) == 2 and server.received else []

        runs = await wait_for(finished)
        by_element = {r["element_id"]: r for r in runs}
        assert by_element[element["id"]]["status"] == "succeeded", by_element[element["id"]]
        assert by_element[element["id"]]["attempts"] == 1
        assert by_element[small["id"]]["status"] == "skipped"

        tasks = (await client.get("/tasks", params={"element_id": element["id"]})).json()["items"]
        assert [t["title"] for t in tasks] == ["Call ACME (500)"]
        assert (await client.get("/tasks", params={"element_id": small["id"]})).json()["items"] == []

        assert len(server.received) == 1
        hit = server.received[0]
        signed = f"{hit.headers['webhook-id']}.{hit.headers['webhook-timestamp']}.".encode() + hit.body
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert hit.headers["webhook-signature"] == expected
        assert hit.json()["data"]["element"]["id"] == element["id"]

        timeline = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
        assert any(e["kind"] == "automation_run" and e["data"]["status"] == "succeeded" for e in timeline)
        run_id = by_element[element["id"]]["id"]

        async def settled() -> list[dict[str, Any]]:
            # The receiver has the request a moment before the worker records the answer.
            items: list[dict[str, Any]] = (await client.get(f"/automation/runs/{run_id}/deliveries")).json()["items"]
            return items if items and items[0]["status"] != "pending" else []

        deliveries = await wait_for(settled)
        assert deliveries[0]["status"] == "succeeded"
        assert deliveries[0]["log"][0]["status_code"] == 200


async def test_a_tunnel_moves_the_element_to_another_pipeline(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    patched = await client.patch("/entity-types/lead", json={"settings": {"pipelines_enabled": True}})
    assert patched.status_code == 200, patched.text
    pipeline = await default_pipeline(client, "lead")
    response = await client.post(
        "/entity-types/lead/pipelines",
        json={
            "title": "Onboarding",
            "stages": [{"code": "KICKOFF", "title": "Kickoff"}, {"code": "LIVE", "title": "Live"}],
        },
    )
    assert response.status_code == 201, response.text
    onboarding = response.json()
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Won leads go to onboarding",
            "entity_type": "lead",
            "stage_id": stage_id(pipeline, "SUCCESS"),
            "trigger": {"type": "element.entered_stage"},
            "actions": [
                {"type": "move_to_pipeline", "params": {"pipeline_id": onboarding["id"], "stage_code": "KICKOFF"}}
            ],
        },
    )
    assert response.status_code == 201, response.text
    element = await create_element(client, "lead", title="Won")
    assert (await client.post(f"/elements/{element['id']}/move", json={"stage_code": "SUCCESS"})).status_code == 200

    async def tunnelled() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/elements/{element['id']}")).json()
        return body if body["pipeline_id"] == onboarding["id"] else None

    moved = await wait_for(tunnelled)
    assert moved["stage_code"] == "KICKOFF"


async def test_time_in_stage_fires_after_its_time(client: httpx.AsyncClient, worker: subprocess.Popen[bytes]) -> None:
    await lead_type(client)
    pipeline = await default_pipeline(client, "lead")
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Stuck in NEW",
            "entity_type": "lead",
            "stage_id": stage_id(pipeline, "NEW"),
            "trigger": {"type": "time_in_stage", "seconds": 2},
            "actions": [{"type": "add_comment", "params": {"text": "{{ title }} waited too long"}}],
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    waiting = await create_element(client, "lead", title="Slow")
    left = await create_element(client, "lead", title="Quick")
    assert (await client.post(f"/elements/{left['id']}/move", json={"stage_code": "IN_PROGRESS"})).status_code == 200

    async def comments(element_id: str) -> list[dict[str, Any]]:
        items = (await client.get(f"/elements/{element_id}/history")).json()["items"]
        return [e for e in items if e["kind"] == "comment"]

    await asyncio_sleep(1.0)
    assert await comments(waiting["id"]) == []  # not before its time
    found = await wait_for(lambda: comments(waiting["id"]), seconds=10)
    assert found[0]["data"]["text"] == "Slow waited too long"
    await asyncio_sleep(1.5)
    assert await comments(left["id"]) == []  # it left the stage in time
    assert [r["status"] for r in await runs_of(client, rule["id"])] == ["succeeded"]


async def test_an_incoming_webhook_moves_an_element(client: httpx.AsyncClient, worker: subprocess.Popen[bytes]) -> None:
    await lead_type(client)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Paid invoices start work",
            "entity_type": "lead",
            "trigger": {
                "type": "webhook.received",
                "find": {"field": "email", "op": "eq", "value": "{{ body.email }}"},
            },
            "condition": {"field": "body.status", "op": "eq", "value": "paid"},
            "actions": [{"type": "move_to_stage", "params": {"stage_code": "IN_PROGRESS"}}],
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    hook_url = rule["hook_url"]
    element = await create_element(client, "lead", title="Payer", values={"email": "pay@example.com"})
    other = await create_element(client, "lead", title="Other", values={"email": "other@example.com"})
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as anonymous:
        accepted = await anonymous.post(hook_url, json={"email": "pay@example.com", "status": "paid"})
        assert accepted.status_code == 202, accepted.text
        assert (
            await anonymous.post(hook_url, json={"email": "nobody@example.com", "status": "paid"})
        ).status_code == 202
        assert (await anonymous.post(hook_url + "x", json={})).status_code == 404
        too_big = await anonymous.post(hook_url, content=b'{"a": "' + b"x" * 300_000 + b'"}')
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"

    async def moved() -> bool:
        body = (await client.get(f"/elements/{element['id']}")).json()
        return bool(body["stage_code"] == "IN_PROGRESS")

    await wait_for(moved)
    assert (await client.get(f"/elements/{other['id']}")).json()["stage_code"] == "NEW"

    async def unmatched() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["status"] == "skipped"]

    assert (await wait_for(unmatched))[0]["error"] == "no element matched the incoming hook"


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_a_rule_chain_stops_at_the_depth_limit(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    await create_field(client, "lead", "note", "string")
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Touches itself",
            "entity_type": "lead",
            "trigger": {"type": "element.updated", "fields": ["note"]},
            "actions": [{"type": "set_fields", "params": {"values": {"note": "{{ values.note }}+"}}}],
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    element = await create_element(client, "lead", title="Loop")
    assert (await client.patch(f"/elements/{element['id']}", json={"values": {"note": "x"}})).status_code == 200

    async def stopped() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["status"] == "failed"]

    failed = await wait_for(stopped)
    assert "chain depth limit" in failed[0]["error"]
    runs = await runs_of(client, rule["id"])
    assert len([r for r in runs if r["status"] == "succeeded"]) == 6  # depths 0..5 ran, depth 6 refused


async def test_a_failed_run_keeps_its_error_and_can_be_retried_by_hand(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    pipeline = await default_pipeline(client, "lead")
    # The stage exists when the rule is saved (it is checked then) and is gone when the rule runs.
    later = await client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "LATER", "title": "Later"})
    assert later.status_code == 201, later.text
    response = await client.post(
        "/automation/rules",
        json={
            "name": "To a stage that no longer exists",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [
                {"type": "add_comment", "params": {"text": "before"}},
                {"type": "move_to_stage", "params": {"stage_code": "LATER"}},
            ],
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    assert (await client.delete(f"/stages/{later.json()['id']}")).status_code == 204
    element = await create_element(client, "lead", title="Waits")

    async def failed() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["status"] == "failed"]

    run = (await wait_for(failed))[0]
    assert "LATER" in run["error"]
    assert run["step"] == 0  # the whole attempt rolled back, the comment included
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    assert not [e for e in history if e["kind"] == "comment"]
    assert any(e["kind"] == "automation_run" and e["data"]["status"] == "failed" for e in history)
    assert (await client.post(f"/automation/runs/{run['id']}/retry")).status_code == 200
    assert (await client.post(f"/automation/runs/{run['id']}/retry")).status_code == 409  # queued, not failed

    async def failed_again() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/automation/runs/{run['id']}")).json()
        return body if body["status"] == "failed" and body["attempts"] > run["attempts"] else None

    await wait_for(failed_again)
    added = await client.post(f"/pipelines/{pipeline['id']}/stages", json={"code": "LATER", "title": "Later"})
    assert added.status_code == 201, added.text
    assert (await client.post(f"/automation/runs/{run['id']}/retry")).status_code == 200

    async def succeeded() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/automation/runs/{run['id']}")).json()
        return body if body["status"] == "succeeded" else None

    done = await wait_for(succeeded)
    assert done["error"] is None
    assert (await client.get(f"/elements/{element['id']}")).json()["stage_code"] == "LATER"
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    assert len([e for e in history if e["kind"] == "comment"]) == 1


async def test_a_delay_parks_the_run_then_resumes_it(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Follow up",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [
                {"type": "add_comment", "params": {"text": "first"}},
                {"type": "delay", "params": {"seconds": 1.5}},
                {"type": "add_comment", "params": {"text": "second"}},
            ],
        },
    )
    rule = response.json()
    element = await create_element(client, "lead", title="Later")

    async def parked() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["status"] == "queued" and r["step"] == 2]

    run = (await wait_for(parked))[0]
    assert run["resume_at"] is not None

    async def finished() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["status"] == "succeeded"]

    await wait_for(finished)
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    assert [e["data"]["text"] for e in history if e["kind"] == "comment"] == ["first", "second"]


async def test_assign_notify_linked_element_and_tunnel_copy(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    assert (await client.patch("/entity-types/lead", json={"settings": {"pipelines_enabled": True}})).status_code == 200
    await create_type(client, "deal")
    assert (await client.post("/relations", json={"parent_type": "lead", "child_type": "deal"})).status_code == 201
    assert (await client.post("/relations", json={"parent_type": "lead", "child_type": "lead"})).status_code == 201
    archive = (
        await client.post(
            "/entity-types/lead/pipelines", json={"title": "Archive", "stages": [{"code": "KEPT", "title": "Kept"}]}
        )
    ).json()
    created_user = await client.post("/users", json={"name": "Ann", "email": "ann@example.com", "tier": "senior"})
    assert created_user.status_code == 201, created_user.text
    user = created_user.json()["id"]
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Qualify",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            # The copy is created by the rule too: without this it would copy itself again, down to the depth limit.
            "condition": {"field": "stage_code", "op": "ne", "value": "KEPT"},
            "actions": [
                {"type": "assign", "params": {"user_id": user}},
                {"type": "notify", "params": {"user_id": user, "message": "New lead {{ title }}"}},
                {"type": "create_linked_element", "params": {"entity_type": "deal", "title": "Deal for {{ title }}"}},
                {"type": "move_to_pipeline", "params": {"pipeline_id": archive["id"], "mode": "copy"}},
            ],
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    element = await create_element(client, "lead", title="Zed")

    async def done() -> list[dict[str, Any]]:
        runs = [r for r in await runs_of(client, rule["id"]) if r["element_id"] == element["id"]]
        return runs if runs and runs[0]["status"] in ("succeeded", "failed") else []

    run = (await wait_for(done))[0]
    assert run["status"] == "succeeded", run
    assert (await client.get(f"/elements/{element['id']}")).json()["assigned_to"] == user
    notes = (await client.get("/notifications", params={"user_id": user})).json()["items"]
    assert [n["message"] for n in notes] == ["New lead Zed"]
    deals = (await client.get(f"/elements/{element['id']}/links", params={"type": "deal"})).json()["items"]
    assert [d["title"] for d in deals] == ["Deal for Zed"]
    copies = (await client.get(f"/elements/{element['id']}/links", params={"type": "lead"})).json()["items"]
    assert [(c["title"], c["stage_code"]) for c in copies] == [("Zed", "KEPT")]

    async def copy_skipped() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, rule["id"]) if r["element_id"] == copies[0]["id"]]

    assert [r["status"] for r in await wait_for(copy_skipped)] == ["skipped"]


async def test_date_reached_fires_when_the_date_has_come(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Anniversary",
            "entity_type": "lead",
            "trigger": {"type": "date_reached", "field": "created_on", "offset_days": 1},
            "actions": [{"type": "add_comment", "params": {"text": "a day after {{ values.created_on }}"}}],
        },
    )
    assert response.status_code == 201, response.text
    past = await create_element(client, "lead", title="Old", values={"created_on": "2020-01-01"})
    future = await create_element(client, "lead", title="New", values={"created_on": "2999-01-01"})

    async def comments(element_id: str) -> list[dict[str, Any]]:
        items = (await client.get(f"/elements/{element_id}/history")).json()["items"]
        return [e for e in items if e["kind"] == "comment"]

    found = await wait_for(lambda: comments(past["id"]))
    assert found[0]["data"]["text"] == "a day after 2020-01-01"
    assert await comments(future["id"]) == []
