"""Outgoing calls: URLs checked when saved and when sent, every non-global address refused, answers read with a byte
cap and a total deadline, and a delivery no retry can help dead-lettered at once."""

import asyncio
import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db import unit_of_work
from app.main import create_app
from app.settings import Settings
from app.webhooks import sender
from app.webhooks import service as webhook_service
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from app.webhooks.targets import Network, address_problem, allowed_networks, url_problem
from tests.automation.harness import hook_server
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import lead_type

REFUSED = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",  # noqa: S104  (an address to refuse, not one to bind)
    "224.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "198.18.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fec0::1",  # site-local
    "ff02::1",
    "64:ff9b::a01:203",  # NAT64 of 10.1.2.3
    "64:ff9b::808:808",  # NAT64 even of a public address: the gateway decides where it goes
    "2002:a01:203::1",  # 6to4
    "2001::1",  # Teredo
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
]
GLOBAL = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "::8.8.8.8"]
SAVE_REFUSED = [
    "http://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/",
    "https://[::ffff:10.0.0.1]/",
    "https://[fec0::1]/",
    "https://[64:ff9b::a00:1]/",
    "https://[2002:a00:1::1]/",
    "http://example.com:99999/",
    "http://[::1]:8080/",
]
SECRET = "whsec_dGVzdA=="


class TestAddresses:
    @pytest.mark.parametrize("address", REFUSED)
    def test_not_globally_routable_is_refused(self, address: str) -> None:
        assert address_problem(ipaddress.ip_address(address), []) is not None

    @pytest.mark.parametrize("address", GLOBAL)
    def test_global_unicast_passes(self, address: str) -> None:
        assert address_problem(ipaddress.ip_address(address), []) is None

    @pytest.mark.parametrize(
        ("address", "setting"),
        [
            ("10.1.2.3", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.0.0.0/8"),  # the unwrapped address is what the operator allowed
            ("100.64.0.1", "100.64.0.0/10"),
            ("fd00::5", "fd00::/8"),
            ("127.0.0.1", "192.168.0.0/16, 127.0.0.0/8"),
        ],
    )
    def test_webhook_allowed_networks_lets_an_operator_allow_a_network(self, address: str, setting: str) -> None:
        assert address_problem(ipaddress.ip_address(address), []) is not None
        assert address_problem(ipaddress.ip_address(address), allowed_networks(setting)) is None


class TestUrls:
    @pytest.mark.parametrize(
        "url",
        [
            "http://[::1",  # broken IPv6 literal
            "http://example.com:99999/",
            "http://example.com:http/",
            "http://example.com:0/",
            "http://:80/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://exa mple.com/",
            "http://2130706433/",  # 127.0.0.1 as one number
            "http://0x7f.1/",
            "http://127.1/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fec0::1]/",
            "https://[64:ff9b::a00:1]/",
            "http://100.64.1.1/",
        ],
    )
    def test_refused_before_any_lookup(self, url: str) -> None:
        assert url_problem(url, []) is not None

    @pytest.mark.parametrize(
        "url", ["https://example.com/hook", "https://8.8.8.8:8443/x?y=1", "http://[2606:4700::1111]/"]
    )
    def test_public_urls_pass(self, url: str) -> None:
        assert url_problem(url, []) is None


class TestSavedUrls:
    """The test app allows 127.0.0.0/8 (its receivers listen there): nothing else non-global gets in."""

    @pytest.mark.parametrize("url", SAVE_REFUSED)
    async def test_subscriptions(self, client: httpx.AsyncClient, url: str) -> None:
        response = await client.post("/webhooks", json={"url": url, "events": ["*"]})
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["url"]
        created = await client.post("/webhooks", json={"url": "https://example.com/h", "events": ["*"]})
        assert created.status_code == 201, created.text
        patched = await client.patch(f"/webhooks/{created.json()['id']}", json={"url": url})
        assert patched.status_code == 422, patched.text
        assert (await client.get(f"/webhooks/{created.json()['id']}")).json()["url"] == "https://example.com/h"

    @pytest.mark.parametrize("url", SAVE_REFUSED)
    async def test_rule_webhook_actions(self, client: httpx.AsyncClient, url: str) -> None:
        await lead_type(client)
        rule = {
            "name": "r",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "webhook", "params": {"url": url}}],
        }
        response = await client.post("/automation/rules", json=rule)
        assert response.status_code == 422, response.text
        assert "actions[0].params.url" in {e["field"] for e in response.json()["errors"]}

    async def test_a_malformed_action_secret_is_refused_and_templates_wait_for_their_values(
        self, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        base = {"name": "r", "entity_type": "lead", "trigger": {"type": "element.created"}}
        bad_secret = await client.post(
            "/automation/rules",
            json={
                **base,
                "actions": [{"type": "webhook", "params": {"url": "https://e.com/h", "secret": "whsec_abc"}}],
            },
        )
        assert bad_secret.status_code == 422, bad_secret.text
        assert "actions[0].params.secret" in {e["field"] for e in bad_secret.json()["errors"]}
        templated = await client.post(
            "/automation/rules",
            json={**base, "actions": [{"type": "webhook", "params": {"url": "https://{{ values.email }}/h"}}]},
        )
        assert templated.status_code == 201, templated.text

    async def test_through_graphql(self, app: FastAPI, tenant: Tenant) -> None:
        mutation = (
            'mutation { createWebhook(input: {url: "http://169.254.169.254/", events: ["*"]}) '
            "{ __typename ... on ValidationError { fields { field } } } }"
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {tenant.admin_key}"},
        ) as http:
            response = await http.post("/graphql", json={"query": mutation})
        result = response.json()["data"]["createWebhook"]
        assert result == {"__typename": "ValidationError", "fields": [{"field": "url"}]}


async def test_each_app_checks_saved_urls_with_its_own_allowed_networks(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient
) -> None:
    """The test app allows loopback; an app made with none (as `export-schema` makes one) refuses it, and making it
    changes nothing for the first."""
    strict = create_app(settings.model_copy(update={"WEBHOOK_ALLOWED_NETWORKS": "", "DB_POOL_SIZE": 1}))
    async with strict.router.lifespan_context(strict):
        tenant = await make_tenant(strict)
        async with make_client(strict, tenant.admin_key) as strict_client:
            refused = await strict_client.post("/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["*"]})
    assert refused.status_code == 422, refused.text
    allowed = await client.post("/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["*"]})
    assert allowed.status_code == 201, allowed.text


@dataclass
class RawServer:
    port: int
    sent: int = 0
    requests: int = 0


@contextmanager
def raw_server(*, total: int, chunk: int, pause: float) -> Iterator[RawServer]:
    """Answers every request with a 500 whose body is `total` bytes, written `chunk` bytes at a time."""
    listener = socket.create_server(("127.0.0.1", 0))
    state = RawServer(port=listener.getsockname()[1])
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            state.requests += 1
            try:
                connection.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % total)
                while state.sent < total and not stop.is_set():
                    connection.sendall(b"x" * chunk)
                    state.sent += chunk
                    if pause:
                        time.sleep(pause)
            except OSError:
                return  # the client hung up: what the cap is for

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        listener.close()


LOOPBACK = allowed_networks("127.0.0.0/8")


async def _send(
    url: str, *, secret: str = SECRET, allowed: list[Network] | None = None, deadline: float = 2
) -> sender.Outcome:
    async with httpx.AsyncClient() as http:
        return await sender.send(
            http,
            url=url,
            secret=secret,
            message_id="msg_1",
            body={"a": 1},
            allowed=LOOPBACK if allowed is None else allowed,
            timeout_seconds=deadline,
        )


class TestSending:
    async def test_a_dripping_answer_is_cut_at_the_total_deadline(self) -> None:
        with raw_server(total=10_000, chunk=1, pause=0.05) as server:  # 500 s to read at this pace
            started = time.monotonic()
            outcome = await _send(f"http://127.0.0.1:{server.port}/", deadline=1)
            elapsed = time.monotonic() - started
        assert elapsed < 2, elapsed
        assert outcome.status_code is None
        assert outcome.error is not None
        assert "within 1 s" in outcome.error
        assert not outcome.permanent

    async def test_a_huge_answer_is_read_only_up_to_the_cap(self) -> None:
        total = 200 * 1024 * 1024
        with raw_server(total=total, chunk=64 * 1024, pause=0) as server:
            outcome = await _send(f"http://127.0.0.1:{server.port}/", deadline=10)
            await asyncio.sleep(0.2)
            sent = server.sent
        assert outcome.status_code == 500
        assert outcome.error is not None
        assert outcome.error.startswith("HTTP 500: xxx")
        assert len(outcome.error) < 400
        assert sent < total // 4, sent  # the rest was never read

    @pytest.mark.parametrize(
        "url",
        ["http://example.com:99999/", "http://[::1", "ftp://example.com/", "http://:80/"],
    )
    async def test_a_malformed_url_is_a_permanent_refusal(self, url: str) -> None:
        outcome = await _send(url)
        assert outcome.status_code is None
        assert outcome.error is not None
        assert outcome.error.startswith("refused")
        assert outcome.permanent

    @pytest.mark.parametrize("secret", ["whsec_abc", "whsec_é", "whsec_==", ""])
    async def test_a_malformed_secret_is_a_permanent_refusal(self, secret: str) -> None:
        with hook_server() as server:
            outcome = await _send(server.url(), secret=secret)
            assert server.received == []
        assert outcome.permanent
        assert outcome.error == "refused: the signing secret is malformed"

    @pytest.mark.parametrize(
        "host", ["[::ffff:127.0.0.1]", "[::127.0.0.1]", "2130706433", "127.1", "[64:ff9b::7f00:1]", "100.64.0.1"]
    )
    async def test_literal_addresses_in_every_spelling_are_refused_at_send(self, host: str) -> None:
        with hook_server() as server:
            outcome = await _send(f"http://{host}:{server.port}/hook", allowed=[], deadline=1)
            assert server.received == []
        assert outcome.error is not None
        assert outcome.error.startswith("refused"), outcome.error
        assert outcome.permanent

    async def test_an_ipv4_mapped_address_the_operator_allows_is_called_on_ipv4(self) -> None:
        with hook_server() as server:
            outcome = await _send(f"http://[::ffff:127.0.0.1]:{server.port}/hook")
            assert outcome.ok, outcome.error
            assert len(server.received) == 1


class TestDeadLetters:
    async def _delivery(self, app: FastAPI, tenant: Tenant, *, url: str, secret: str, attempts: int = 0) -> uuid.UUID:
        async with unit_of_work(app.state.sessionmaker) as session:
            delivery_id = await webhook_service.add_delivery(
                session,
                tenant.workspace_id,
                source_key=f"test:{uuid.uuid4()}",
                url=url,  # as stored before URLs were checked when saved
                secret=secret,
                event_type="element.created",
                body={"a": 1},
            )
            assert delivery_id is not None
            if attempts:
                delivery = await session.get(WebhookDelivery, delivery_id)
                assert delivery is not None
                delivery.attempts = attempts
        return delivery_id

    async def _attempt(self, app: FastAPI, settings: Settings, delivery_id: uuid.UUID) -> object:
        async with unit_of_work(app.state.sessionmaker) as session:
            claimed = await webhook_service.claim_delivery(
                session, delivery_id, lease_seconds=30, max_attempts=settings.WEBHOOK_MAX_ATTEMPTS
            )
        if claimed is None:
            return None
        async with httpx.AsyncClient() as http, unit_of_work(app.state.sessionmaker) as session:
            return await webhook_service.attempt_delivery(session, http, settings, claimed)

    async def _state(self, app: FastAPI, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
        async with unit_of_work(app.state.sessionmaker) as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            attempts = list(
                await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))
            )
        return delivery, attempts

    @pytest.mark.parametrize(
        ("url", "secret"),
        [
            ("http://example.com:99999/", SECRET),
            ("http://[::1", SECRET),
            ("https://[::ffff:10.0.0.1]/", SECRET),
            ("http://127.0.0.1:9/", "whsec_abc"),
        ],
        ids=["port", "ipv6-literal", "mapped-private", "secret"],
    )
    async def test_one_failed_attempt_is_logged_and_the_delivery_dead_lettered(
        self, app: FastAPI, tenant: Tenant, settings: Settings, url: str, secret: str
    ) -> None:
        delivery_id = await self._delivery(app, tenant, url=url, secret=secret)
        retry_at = await self._attempt(app, settings, delivery_id)
        assert retry_at is None
        delivery, attempts = await self._state(app, delivery_id)
        assert delivery.status == DeliveryStatus.failed
        assert delivery.next_attempt_at is None
        assert [a.attempt for a in attempts] == [1]
        assert attempts[0].error is not None
        assert attempts[0].error.startswith("refused")
        assert await self._attempt(app, settings, delivery_id) is None  # nothing left to claim

    async def test_a_delivery_whose_attempts_never_finished_is_dead_lettered_when_claimed(
        self, app: FastAPI, tenant: Tenant, settings: Settings
    ) -> None:
        delivery_id = await self._delivery(
            app, tenant, url="https://example.com/h", secret=SECRET, attempts=settings.WEBHOOK_MAX_ATTEMPTS
        )
        assert await self._attempt(app, settings, delivery_id) is None
        delivery, attempts = await self._state(app, delivery_id)
        assert delivery.status == DeliveryStatus.failed
        assert delivery.attempts == settings.WEBHOOK_MAX_ATTEMPTS
        # Nothing was sent: the one attempt logged is the give-up, naming the attempt that never finished.
        assert [a.latency_ms for a in attempts] == [0]
        assert "never finished" in (attempts[0].error or "")

    async def test_a_batch_is_claimed_sent_and_settled_together(
        self, app: FastAPI, tenant: Tenant, settings: Settings
    ) -> None:
        """`deliver_many`: the answered one succeeds, the refused one waits for its retry, the exhausted one is given
        up without a request, and one already claimed by someone else is left alone."""
        from app.automation import runner
        from tests.automation.test_rule_typing import RecordingWaker

        allowed = settings.model_copy(update={"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"})
        with hook_server() as good, hook_server() as bad:
            bad.status = 503
            answered = await self._delivery(app, tenant, url=good.url(), secret=SECRET)
            refused = await self._delivery(app, tenant, url=bad.url(), secret=SECRET)
            exhausted = await self._delivery(
                app, tenant, url=good.url(), secret=SECRET, attempts=settings.WEBHOOK_MAX_ATTEMPTS
            )
            taken = await self._delivery(app, tenant, url=good.url(), secret=SECRET)
            async with unit_of_work(app.state.sessionmaker) as session:
                assert await webhook_service.claim_delivery(session, taken, lease_seconds=30, max_attempts=8)
            waker = RecordingWaker()
            async with httpx.AsyncClient() as http:
                ids = [answered, refused, exhausted, taken]
                await runner.deliver_many(app.state.sessionmaker, allowed, http, waker, ids)
            assert (len(good.received), len(bad.received)) == (1, 1)
        states = {
            name: await self._state(app, i) for name, i in zip(("ok", "retry", "gone", "taken"), ids, strict=True)
        }
        assert states["ok"][0].status == DeliveryStatus.succeeded
        assert (states["retry"][0].status, states["retry"][0].last_status_code) == (DeliveryStatus.pending, 503)
        assert waker.woken == [("deliver", refused)]  # its retry, after backoff
        assert states["gone"][0].status == DeliveryStatus.failed
        assert [a.latency_ms for a in states["gone"][1]] == [0]
        assert (states["taken"][0].status, states["taken"][0].attempts, states["taken"][1]) == (
            DeliveryStatus.pending,
            1,
            [],
        )
