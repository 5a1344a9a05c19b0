"""The lease, the arq job timeout and the webhook deadline come from one setting and nest (lease > job > request), so
an expired lease never lets a second worker at a run or delivery the first is still on; and a run that hangs is cut,
taken over, and given up once out of attempts."""

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.automation import runner
from app.db import unit_of_work
from app.settings import Settings
from app.webhooks import service as webhook_service
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from tests.automation.harness import running_worker, wait_for
from tests.automation.test_rule_typing import RecordingWaker
from tests.conftest import Tenant
from tests.factories import create_element, lead_type
from workers.main import make_worker

LEASE_TAKERS = ("automation.handle_event", "automation.run", "automation.resume", "automation.fire_timer")


@pytest.mark.parametrize("lease", [1, 2, 4, 60, 600])
@pytest.mark.parametrize("webhook_timeout", [0.5, 10, 1000])
def test_the_job_timeout_lies_between_the_lease_and_the_webhook_deadline(lease: float, webhook_timeout: float) -> None:
    settings = Settings(AUTOMATION_LEASE_SECONDS=lease, WEBHOOK_TIMEOUT_SECONDS=webhook_timeout)
    assert settings.AUTOMATION_LEASE_SECONDS > settings.job_timeout_seconds > settings.webhook_deadline_seconds > 0
    assert settings.webhook_deadline_seconds <= webhook_timeout


def test_the_worker_cuts_every_job_that_takes_a_lease_before_the_lease_expires(settings: Settings) -> None:
    for lease in (2.0, 60.0):
        timing = settings.model_copy(update={"AUTOMATION_LEASE_SECONDS": lease})
        worker = make_worker(timing)
        assert worker.job_timeout_s == timing.job_timeout_seconds
        for name in (*LEASE_TAKERS, "webhook.deliver"):
            function = worker.functions[name]
            assert (function.timeout_s or worker.job_timeout_s) < lease, name


@dataclass
class DripServer:
    """Answers 200 and then one byte of its body every 0.1 s: each read within httpx's timeout, the whole never."""

    port: int
    requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"


@contextmanager
def drip_server() -> Iterator[DripServer]:
    state = DripServer(port=0)
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.requests += 1
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "100000")
            self.end_headers()
            while not stop.is_set():
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


async def test_a_send_that_drags_on_is_cut_before_its_lease_and_no_second_worker_sends_it(
    app: FastAPI, tenant: Tenant, settings: Settings
) -> None:
    timing = settings.model_copy(
        update={
            "AUTOMATION_LEASE_SECONDS": 4.0,
            "WEBHOOK_TIMEOUT_SECONDS": 30.0,  # asks for more than the lease allows: the deadline caps it
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        }
    )
    with drip_server() as server:
        async with unit_of_work(app.state.sessionmaker) as session:
            delivery_id = await webhook_service.add_delivery(
                session,
                tenant.workspace_id,
                source_key=f"test:{uuid.uuid4()}",
                url=server.url,
                secret="whsec_" + "A" * 32,
                event_type="element.created",
                body={"a": 1},
            )
        assert delivery_id is not None
        async with httpx.AsyncClient() as http:
            started = time.monotonic()
            first = asyncio.create_task(
                runner.deliver(app.state.sessionmaker, timing, http, RecordingWaker(), delivery_id)
            )
            await asyncio.sleep(0.5)
            # Another worker is handed the same delivery meanwhile (a sweep, a replayed job): the lease keeps it off.
            await runner.deliver(app.state.sessionmaker, timing, http, RecordingWaker(), delivery_id)
            await asyncio.wait_for(first, timeout=timing.AUTOMATION_LEASE_SECONDS)
            elapsed = time.monotonic() - started
        assert server.requests == 1
    assert elapsed < timing.job_timeout_seconds
    async with app.state.sessionmaker() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        (attempt,) = await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))
    assert attempt.error is not None
    assert attempt.error.startswith("timed out"), attempt.error
    assert attempt.latency_ms is not None
    assert attempt.latency_ms < timing.job_timeout_seconds * 1000
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.pending, 1)
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at > datetime.now(UTC)  # its retry, after backoff


async def test_a_run_that_hangs_is_cut_taken_over_and_given_up_once_out_of_attempts(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The run waits on a row the test keeps locked: every attempt hangs until the job timeout cuts it."""
    await lead_type(client)
    element = await create_element(client, "lead", title="Locked")
    rule = await client.post(
        "/automation/rules",
        json={
            "name": "Touch",
            "entity_type": "lead",
            "trigger": {"type": "webhook.received", "element_id": "{{ body.id }}"},
            "actions": [{"type": "set_fields", "params": {"title": "touched"}}],
        },
    )
    assert rule.status_code == 201, rule.text
    locker = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT 1 FROM elements WHERE id = $1 FOR UPDATE", uuid.UUID(element["id"]))
        with running_worker(settings):
            async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as anonymous:
                hooked = await anonymous.post(rule.json()["hook_url"], json={"id": element["id"]})
                assert hooked.status_code == 202, hooked.text

            async def given_up() -> dict[str, Any] | None:
                runs = (await client.get("/automation/runs", params={"rule_id": rule.json()["id"]})).json()["items"]
                return runs[0] if runs and runs[0]["status"] == "failed" else None

            run = await wait_for(given_up, seconds=90, interval=0.5)
        await lock.rollback()
    finally:
        await locker.close()
    assert run["attempts"] == settings.AUTOMATION_MAX_ATTEMPTS, run
    assert run["error"].startswith(
        f"gave up after {settings.AUTOMATION_MAX_ATTEMPTS} attempts (the last one never finished"
    ), run
    assert (await client.get(f"/elements/{element['id']}")).json()["title"] == "Locked"
