import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.kit.signing import verify
from app.settings import Settings
from app.webhooks import sender
from tests.automation.harness import hook_server, running_worker, wait_for
from tests.factories import create_element, lead_type


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings) as process:
        yield process


class TestSubscriptions:
    async def test_the_secret_is_shown_once(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/webhooks", json={"url": "https://example.com/in", "events": ["element.created"]})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["secret"].startswith("whsec_")
        read = (await client.get(f"/webhooks/{created['id']}")).json()
        assert "secret" not in read
        assert [w["id"] for w in (await client.get("/webhooks")).json()["items"]] == [created["id"]]

    async def test_bad_input_is_a_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/webhooks", json={"url": "ftp://x", "events": []})
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert {"url", "events"} <= fields
        bad_filter = await client.post(
            "/webhooks", json={"url": "https://e.com", "events": ["*"], "filter": {"field": "x", "op": "nope"}}
        )
        assert bad_filter.status_code == 422

    async def test_other_workspaces_and_viewers(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        created = (await client.post("/webhooks", json={"url": "https://e.com/h", "events": ["*"]})).json()
        assert (await other_client.get(f"/webhooks/{created['id']}")).status_code == 404
        assert (await other_client.get(f"/webhooks/{created['id']}/deliveries")).status_code == 404
        assert (
            await viewer_client.post("/webhooks", json={"url": "https://e.com", "events": ["*"]})
        ).status_code == 403

    async def test_update_and_delete(self, client: httpx.AsyncClient) -> None:
        created = (await client.post("/webhooks", json={"url": "https://e.com/h", "events": ["*"]})).json()
        patched = await client.patch(f"/webhooks/{created['id']}", json={"enabled": False, "events": ["element.moved"]})
        assert patched.status_code == 200
        assert patched.json()["enabled"] is False
        assert (await client.delete(f"/webhooks/{created['id']}")).status_code == 204
        assert (await client.get(f"/webhooks/{created['id']}")).status_code == 404


class TestTargets:
    async def test_loopback_private_and_link_local_are_refused_at_send_time(self) -> None:
        with hook_server() as server:
            async with httpx.AsyncClient() as http:
                for url in (server.url(), f"http://localhost:{server.port}/hook", "http://169.254.169.254/latest"):
                    outcome = await sender.send(
                        http,
                        url=url,
                        secret="whsec_dGVzdA==",
                        message_id="msg_1",
                        body={},
                        allowed=[],
                        timeout_seconds=2,
                    )
                    assert outcome.status_code is None
                    assert outcome.error is not None
                    assert outcome.error.startswith("refused"), outcome.error
                assert server.received == []
                allowed = sender.allowed_networks("127.0.0.0/8, 10.0.0.0/8")
                outcome = await sender.send(
                    http,
                    url=server.url(),
                    secret="whsec_dGVzdA==",
                    message_id="msg_2",
                    body={},
                    allowed=allowed,
                    timeout_seconds=2,
                )
                assert outcome.ok
                assert len(server.received) == 1


async def deliveries(client: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get(f"/webhooks/{webhook_id}/deliveries")).json()["items"]
    return items


async def test_a_failing_endpoint_is_retried_logged_and_replayable(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    with hook_server() as server:
        server.status = 500
        created = (
            await client.post(
                "/webhooks",
                json={
                    "url": server.url("/events"),
                    "events": ["element.created"],
                    "filter": {"field": "budget", "op": "gt", "value": 10},
                },
            )
        ).json()
        element = await create_element(client, "lead", title="Big", values={"budget": 100})
        await create_element(client, "lead", title="Small", values={"budget": 1})

        async def failed_once() -> bool:
            return len(server.received) >= 1

        await wait_for(failed_once)
        server.status = 200

        async def delivered() -> list[dict[str, Any]]:
            items = await deliveries(client, created["id"])
            return items if items and items[0]["status"] == "succeeded" else []

        items = await wait_for(delivered, seconds=20)
        assert len(items) == 1  # the small lead does not match the filter
        log = items[0]["log"]
        assert [a["status_code"] for a in log][-1] == 200
        assert log[0]["status_code"] == 500
        assert log[0]["error"]
        assert all(a["latency_ms"] is not None for a in log)
        ids = {r.headers["webhook-id"] for r in server.received}
        assert ids == {items[0]["message_id"]}  # retries keep the message id
        last = server.received[-1]
        assert verify(
            created["secret"],
            last.headers["webhook-id"],
            int(last.headers["webhook-timestamp"]),
            last.body,
            last.headers["webhook-signature"],
        )
        assert last.json()["data"]["element"]["id"] == element["id"]

        sent = len(server.received)
        replay = await client.post(f"/webhooks/{created['id']}/deliveries/{items[0]['id']}/replay")
        assert replay.status_code == 200, replay.text

        async def replayed() -> bool:
            return len(server.received) == sent + 1

        await wait_for(replayed)
        assert server.received[-1].headers["webhook-id"] == items[0]["message_id"]
