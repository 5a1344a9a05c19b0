"""Requests per caller: a token bucket in the tests' Redis per API key (and per person for their tokens), 429
problem+json with Retry-After when it is empty, limits per role name and per workspace, and no outage when Redis is
unreachable. The session's app runs with the (generous) defaults; these tests put a limiter with small limits in
its place, on the same Redis."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.access.permissions import NOTHING, Access, RoleGrants
from app.auth.actor import Actor
from app.auth.models import Role
from app.auth.ratelimit import RateLimits, RequestLimiter, bucket_key
from app.errors import TooManyRequests
from app.kit.net import free_port
from app.settings import RateLimit, Settings, WorkspaceRateLimit
from tests.auth.conftest import add_person, log_in
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import created

GENEROUS = RateLimit(per_second=1000, burst=1000)
# A bucket that does not refill within a test: what a test takes is gone.
TWO = RateLimit(per_second=0.001, burst=2)
ONE = RateLimit(per_second=0.001, burst=1)


def key_actor(role: Role = Role.editor) -> Actor:
    return Actor(workspace_id=uuid.uuid4(), role=role, api_key_id=uuid.uuid4())


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.REDIS_URL or "")
    yield client
    await client.aclose()


@pytest.fixture
def use_limits(app: FastAPI, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Callable[[RateLimits], None]:
    def use(limits: RateLimits) -> None:
        monkeypatch.setattr(app.state, "request_limiter", RequestLimiter(redis, limits))

    return use


async def outcomes(limiter: RequestLimiter, actor: Actor, count: int) -> list[int | None]:
    """Each request's refusal (its Retry-After) or None when it passed, all sent at once."""

    async def one() -> int | None:
        try:
            await limiter.admit(actor)
        except TooManyRequests as refused:
            return refused.retry_after
        return None

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_concurrent_requests_take_exactly_the_tokens_there_are(redis: Redis) -> None:
    limiter = RequestLimiter(redis, RateLimits(RateLimit(per_second=0.001, burst=10), {}, {}))
    actor = key_actor()
    results = await outcomes(limiter, actor, 40)
    assert results.count(None) == 10
    # An empty bucket at 0.001 tokens a second: the next token is about 1000 s away.
    assert all(wait is not None and 900 <= wait <= 1000 for wait in results if wait is not None)
    assert await outcomes(limiter, key_actor(), 3) == [None, None, None]  # another key has its own bucket


async def test_the_bucket_refills_with_the_time_that_passed(redis: Redis) -> None:
    limiter = RequestLimiter(redis, RateLimits(RateLimit(per_second=2, burst=2), {}, {}))
    actor = key_actor()
    key = bucket_key(actor)
    assert key is not None
    first = await outcomes(limiter, actor, 3)
    assert first.count(None) == 2
    assert first.count(1) == 1  # half a second to the next token: Retry-After rounds up to 1
    # Turn the bucket's clock back one second, as if that much had passed: two tokens again (the burst), no more.
    at = float(await redis.hget(key, "at") or 0)
    await redis.hset(key, "at", f"{at - 1:.6f}")
    assert (await outcomes(limiter, actor, 3)).count(None) == 2
    assert 0 < await redis.pttl(key) <= 2000  # gone once it would be full again: an idle caller costs nothing


async def test_a_busy_caller_takes_tokens_a_few_at_a_time_and_never_more_than_there_are(redis: Redis) -> None:
    """At 1000 a second a process takes 20 tokens per round trip (1/50 of a second's refill) and spends them
    without asking Redis again; two processes share one bucket and cannot take more than it holds."""
    limits = RateLimits(RateLimit(per_second=0.001, burst=50), {}, {})
    busy = RateLimits(RateLimit(per_second=1000, burst=1000), {}, {})
    actor = key_actor()
    key = bucket_key(actor)
    assert key is not None
    first = RequestLimiter(redis, busy)
    await first.admit(actor)
    assert float(await redis.hget(key, "tokens") or 0) == 980  # one round trip took 20
    for _ in range(19):
        await first.admit(actor)  # spent from what it holds: Redis is not asked
    assert float(await redis.hget(key, "tokens") or 0) == 980
    # A slow bucket shared by two processes: 50 tokens, taken one by one (a lease of 1) by both, no more.
    slow_actor = key_actor()
    one, two = RequestLimiter(redis, limits), RequestLimiter(redis, limits)
    results = await asyncio.gather(outcomes(one, slow_actor, 40), outcomes(two, slow_actor, 40))
    assert sum(r.count(None) for r in results) == 50


def test_which_limit_applies() -> None:
    workspace, other = uuid.uuid4(), uuid.uuid4()
    limits = RateLimits(
        GENEROUS,
        {"viewer": TWO, "Reporting": RateLimit(per_second=5, burst=5), "Unlimited": RateLimit(per_second=0, burst=1)},
        {workspace: WorkspaceRateLimit(per_second=50, burst=60, roles={"reporting": ONE})},
    )

    def person(workspace_id: uuid.UUID, *names: str) -> Actor:
        roles = tuple(RoleGrants(uuid.uuid4(), Role.viewer, NOTHING, {}, name) for name in names)
        return Actor(workspace_id=workspace_id, role=Role.viewer, user_id=uuid.uuid4(), access=Access(roles))

    # The default; a level's limit.
    assert limits.for_actor(Actor(workspace_id=other, role=Role.editor)) == GENEROUS
    assert limits.for_actor(Actor(workspace_id=other, role=Role.viewer)) == TWO
    # A custom role by name (any case); a role with no limit of its own falls back to its level's.
    assert limits.for_actor(person(other, "reporting")) == RateLimit(per_second=5, burst=5)
    assert limits.for_actor(person(other, "Sales")) == TWO
    # Several roles: the most generous, no limit at all first.
    assert limits.for_actor(person(other, "Reporting", "viewer")) == RateLimit(per_second=5, burst=5)
    assert limits.for_actor(person(other, "Reporting", "Unlimited")).per_second == 0
    # The workspace's own: for a role of it, else for everyone in it.
    assert limits.for_actor(person(workspace, "Reporting")) == ONE
    assert limits.for_actor(Actor(workspace_id=workspace, role=Role.viewer)) == RateLimit(per_second=50, burst=60)


async def test_a_viewer_key_is_refused_with_429_and_retry_after_and_other_callers_are_not(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, use_limits: Callable[[RateLimits], None]
) -> None:
    viewer_key = created(await client.post("/api-keys", json={"name": "viewer", "role": "viewer"}))["api_key"]
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as other_admin:
        other_viewer_key = created(await other_admin.post("/api-keys", json={"name": "v", "role": "viewer"}))["api_key"]
    use_limits(RateLimits(GENEROUS, {"viewer": TWO}, {}))
    async with make_client(app, viewer_key) as viewer, make_client(app, other_viewer_key) as other_viewer:
        assert (await viewer.get("/entity-types")).status_code == 200
        assert (await viewer.get("/entity-types")).status_code == 200
        refused = await viewer.get("/entity-types")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "https://stageflow.dev/problems/too-many-requests"
        assert 900 <= int(refused.headers["retry-after"]) <= 1000
        # Every way in counts against the same bucket: the lean read path, a write, GraphQL over HTTP.
        assert (await viewer.get("/entity-types/none/elements")).status_code == 429
        assert (await viewer.post("/entity-types", json={"code": "x", "title": "X"})).status_code == 429
        graphql = await viewer.post("http://testserver/graphql", json={"query": "{ entityTypes { code } }"})
        assert graphql.status_code == 429
        assert graphql.headers["retry-after"]
        # The workspace's admin key and another workspace's viewer key have buckets of their own.
        for _ in range(5):
            assert (await client.get("/entity-types")).status_code == 200
        assert [(await other_viewer.get("/entity-types")).status_code for _ in range(3)] == [200, 200, 429]


async def test_a_custom_role_and_a_workspace_have_limits_of_their_own(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, use_limits: Callable[[RateLimits], None]
) -> None:
    created(await client.post("/roles", json={"name": "Reporting", "level": "viewer"}))
    reporting_key = created(await client.post("/api-keys", json={"name": "r", "role": "Reporting"}))["api_key"]
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as other_admin:
        created(await other_admin.post("/roles", json={"name": "Reporting", "level": "viewer"}))
        other_key = created(await other_admin.post("/api-keys", json={"name": "r", "role": "Reporting"}))["api_key"]
    # Reporting keys: two requests; in this workspace one (its own limit for the role wins); its admin: three.
    use_limits(
        RateLimits(
            GENEROUS,
            {"reporting": TWO},
            {tenant.workspace_id: WorkspaceRateLimit(per_second=0.001, burst=3, roles={"Reporting": ONE})},
        )
    )
    async with make_client(app, reporting_key) as reporting, make_client(app, other_key) as other_reporting:
        assert [(await reporting.get("/entity-types")).status_code for _ in range(2)] == [200, 429]
        assert [(await other_reporting.get("/entity-types")).status_code for _ in range(3)] == [200, 200, 429]
        assert [(await client.get("/entity-types")).status_code for _ in range(4)] == [200, 200, 200, 429]


async def test_a_persons_tokens_share_one_bucket(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, use_limits: Callable[[RateLimits], None]
) -> None:
    person = await add_person(app, tenant, client, role="editor")
    first, second = (await log_in(app, person))["access_token"], (await log_in(app, person))["access_token"]
    use_limits(RateLimits(GENEROUS, {"editor": TWO}, {}))
    async with make_client(app, first) as one, make_client(app, second) as two:
        assert (await one.get("/entity-types")).status_code == 200
        assert (await two.get("/entity-types")).status_code == 200
        assert (await one.get("/entity-types")).status_code == 429
        assert (await two.get("/entity-types")).status_code == 429
    assert (await client.get("/entity-types")).status_code == 200  # the admin key is not the person


async def test_redis_unreachable_lets_requests_through_with_a_warning(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    limiter = RequestLimiter(nowhere, RateLimits(ONE, {}, {}))
    monkeypatch.setattr(app.state, "request_limiter", limiter)
    with caplog.at_level(logging.WARNING, logger="stageflow.auth"):
        assert [(await client.get("/entity-types")).status_code for _ in range(3)] == [200, 200, 200]
    warnings = [r for r in caplog.records if "rate limits not applied" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request
    await nowhere.aclose()
