"""Failed logins are limited per account (5 per 15 minutes) and per client address (20), in Redis; a limited login
answers the same 429 whether the account exists or not."""

import uuid

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.auth.ratelimit import LoginLimiter
from app.errors import TooManyRequests
from app.settings import Settings
from tests.auth.conftest import add_person, anonymous_client, new_address
from tests.conftest import Tenant


async def attempt(
    app: FastAPI, workspace_id: uuid.UUID | None, email: str, password: str, address: str
) -> httpx.Response:
    body = {"email": email, "password": password}
    if workspace_id is not None:
        body["workspace_id"] = str(workspace_id)
    async with anonymous_client(app, address) as http:
        return await http.post("/auth/login", json=body)


class TestPerAccount:
    async def test_the_sixth_try_is_429_even_with_the_right_password(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        for n in range(5):  # each from another address, naming various workspaces: the e-mail's count alone
            workspace = (tenant.workspace_id, uuid.uuid4(), None)[n % 3]
            response = await attempt(app, workspace, person.email, f"wrong-{n}", new_address())
            assert response.status_code == 401
        limited = await attempt(app, tenant.workspace_id, person.email.upper(), person.password, new_address())
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 0 < int(limited.headers["retry-after"]) <= 15 * 60
        # Another account is not affected.
        other = await add_person(app, tenant, client)
        assert (await attempt(app, tenant.workspace_id, other.email, other.password, new_address())).status_code == 200

    async def test_an_unknown_account_is_limited_the_same_way(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
        answers = []
        for email in (person.email, ghost):
            for n in range(5):
                assert (await attempt(app, tenant.workspace_id, email, f"w{n}", new_address())).status_code == 401
            answers.append(await attempt(app, tenant.workspace_id, email, "w", new_address()))
        assert [a.status_code for a in answers] == [429, 429]
        assert answers[0].json() == answers[1].json()
        assert answers[0].headers.keys() == answers[1].headers.keys()

    async def test_a_success_clears_the_account_count(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        for _ in range(2):
            for n in range(4):
                assert (
                    await attempt(app, tenant.workspace_id, person.email, f"w{n}", new_address())
                ).status_code == 401
            ok = await attempt(app, tenant.workspace_id, person.email, person.password, new_address())
            assert ok.status_code == 200


class TestPerAddress:
    async def test_an_address_trying_many_accounts_is_stopped(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        address = new_address()
        for n in range(20):
            email = f"spray-{n}-{uuid.uuid4().hex[:6]}@example.com"
            assert (await attempt(app, tenant.workspace_id, email, "guess", address)).status_code == 401
        limited = await attempt(app, tenant.workspace_id, person.email, person.password, address)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        elsewhere = await attempt(app, tenant.workspace_id, person.email, person.password, new_address())
        assert elsewhere.status_code == 200


class TestStore:
    async def test_counts_live_in_redis_and_expire_with_the_window(self, settings: Settings) -> None:
        redis = Redis.from_url(str(settings.REDIS_URL))
        try:
            limiter = LoginLimiter(redis, per_account=2, per_address=100, window_seconds=60)
            account = f"*:{uuid.uuid4()}@example.com"
            for _ in range(2):
                await limiter.failed(account, "192.0.2.1")
            keys = [k async for k in redis.scan_iter(match="stageflow:login-failures:account:*")]
            assert keys
            assert account.encode() not in b"".join(keys)  # hashed: no e-mail addresses in Redis
            with pytest.raises(TooManyRequests) as refused:
                await limiter.check(account, "192.0.2.1")
            assert 55 <= refused.value.retry_after <= 60
        finally:
            await redis.aclose()

    async def test_an_ipv6_client_counts_by_its_64(self, settings: Settings) -> None:
        redis = Redis.from_url(str(settings.REDIS_URL))
        network = f"2001:db8:{uuid.uuid4().int % 65536:x}:{uuid.uuid4().int % 65536:x}"
        try:
            limiter = LoginLimiter(redis, per_account=100, per_address=2, window_seconds=60)
            await limiter.failed(f"{uuid.uuid4()}@example.com", f"{network}::1")
            await limiter.failed(f"{uuid.uuid4()}@example.com", f"{network}:0:0:0:2")
            with pytest.raises(TooManyRequests):
                await limiter.check(f"{uuid.uuid4()}@example.com", f"{network}::ffff")
            await limiter.check(f"{uuid.uuid4()}@example.com", "2001:db8::1")  # another /64
        finally:
            await redis.aclose()

    async def test_without_redis_each_process_counts_in_memory(self) -> None:
        unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            for redis in (None, unreachable):
                limiter = LoginLimiter(redis, per_account=2, per_address=100, window_seconds=60)
                await limiter.check("acct", "192.0.2.2")
                await limiter.failed("acct", "192.0.2.2")
                await limiter.failed("acct", "192.0.2.2")
                with pytest.raises(TooManyRequests):
                    await limiter.check("acct", "192.0.2.2")
                await limiter.succeeded("acct")
                await limiter.check("acct", "192.0.2.2")
        finally:
            await unreachable.aclose()
