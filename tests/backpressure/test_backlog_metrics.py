"""/metrics reports how far behind the asynchronous work is, read from the tests' Redis (arq's queue) and PostgreSQL
(due runs, deliveries, undispatched events) on scrape, at most once per METRICS_BACKLOG_TTL_SECONDS."""

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import created


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and all(metric.labels.get(k) == v for k, v in labels.items()):
                return float(metric.value)
    raise AssertionError(f"{name} {labels} is not in /metrics")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    yield connection
    await connection.close()


@pytest.fixture
async def backlog(
    tenant: Tenant, client: httpx.AsyncClient, database: asyncpg.Connection, settings: Settings
) -> AsyncIterator[dict[str, str]]:
    """A run due 10 minutes ago, a running one whose lease expired, a delivery due 5 minutes ago, the next event to
    dispatch left undispatched 20 minutes, and two jobs in arq's queue (one due, one an hour ahead); all removed
    afterwards."""
    created(await client.post("/entity-types", json={"code": "lead", "title": "Lead"}))
    rule = created(
        await client.post(
            "/automation/rules",
            json={
                "name": "r",
                "entity_type": "lead",
                "trigger": {"type": "element.created"},
                "actions": [{"type": "create_task", "params": {"title": "t"}}],
            },
        )
    )
    workspace, rule_id = tenant.workspace_id, uuid.UUID(rule["id"])
    runs, delivery, event = [uuid.uuid4(), uuid.uuid4()], uuid.uuid4(), uuid.uuid4()
    redis = Redis.from_url(settings.REDIS_URL or "")
    now_ms = time.time() * 1000
    jobs = {f"test-due-{uuid.uuid4()}": now_ms - 1000, f"test-later-{uuid.uuid4()}": now_ms + 3.6e6}
    try:
        await database.execute(
            "INSERT INTO automation_runs (id, workspace_id, rule_id, event_id, event_type, status, depth, step,"
            " attempts, context, resume_at, lease_until) VALUES"
            " ($1, $3, $4, gen_random_uuid(), 'element.created', 'queued', 0, 0, 0, '{}',"
            "  now() - interval '10 min', NULL),"
            " ($2, $3, $4, gen_random_uuid(), 'element.created', 'running', 0, 0, 1, '{}',"
            "  NULL, now() - interval '1 min')",
            *runs,
            workspace,
            rule_id,
        )
        await database.execute(
            "INSERT INTO webhook_deliveries (id, workspace_id, source_key, message_id, event_type, url, secret, body,"
            " status, attempts, next_attempt_at) VALUES ($1, $2, $3, $3, 'element.created', 'http://127.0.0.1:9/',"
            " 's', '{}', 'pending', 0, now() - interval '5 min')",
            delivery,
            workspace,
            f"test:{delivery}",
        )
        await database.execute(
            # First in dispatch order (by id), as the oldest pending event would be.
            "INSERT INTO outbox_events (id, event_id, workspace_id, event_type, payload, created_at) VALUES"
            " ((SELECT coalesce(min(id), 1) - 1 FROM outbox_events), $1, $2, 'element.created', '{}',"
            "  now() - interval '20 min')",
            event,
            workspace,
        )
        await redis.zadd("arq:queue", jobs)
        yield {"queue": "arq:queue"}
    finally:
        await redis.zrem("arq:queue", *jobs)
        await redis.aclose()
        await database.execute("DELETE FROM automation_runs WHERE id = ANY($1::uuid[])", runs)
        await database.execute("DELETE FROM webhook_deliveries WHERE id = $1", delivery)
        await database.execute("DELETE FROM outbox_events WHERE event_id = $1", event)


async def scrape(app: FastAPI) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as plain:
        response = await plain.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_queue_depth_and_lag_are_read_on_scrape(
    app: FastAPI, settings: Settings, backlog: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state, "settings", settings.model_copy(update={"METRICS_BACKLOG_TTL_SECONDS": 0}))
    text = await scrape(app)
    assert sample(text, "stageflow_backlog_up", source="database") == 1
    assert sample(text, "stageflow_backlog_up", source="redis") == 1
    assert sample(text, "stageflow_queue_jobs") >= 2
    assert 1 <= sample(text, "stageflow_queue_due_jobs") < sample(text, "stageflow_queue_jobs")
    assert sample(text, "stageflow_automation_run_lag_seconds") >= 600
    assert sample(text, "stageflow_webhook_delivery_lag_seconds") >= 300
    assert sample(text, "stageflow_outbox_lag_seconds") >= 1200
    for state in ("queued", "due", "running", "lease_expired"):
        assert sample(text, "stageflow_automation_open_runs", state=state) >= 1
    assert sample(text, "stageflow_webhook_pending_deliveries") >= 1
    assert sample(text, "stageflow_outbox_pending_events") >= 1
    assert sample(text, "stageflow_db_read_pool_size") >= 1


async def test_a_scrape_within_the_ttl_reuses_the_last_reading(
    app: FastAPI, settings: Settings, backlog: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = Redis.from_url(settings.REDIS_URL or "")
    monkeypatch.setattr(app.state, "settings", settings.model_copy(update={"METRICS_BACKLOG_TTL_SECONDS": 0}))
    before = sample(await scrape(app), "stageflow_queue_jobs")
    monkeypatch.setattr(app.state, "settings", settings.model_copy(update={"METRICS_BACKLOG_TTL_SECONDS": 3600}))
    extra = f"test-extra-{uuid.uuid4()}"
    await redis.zadd(backlog["queue"], {extra: time.time() * 1000 + 3.6e6})
    try:
        assert sample(await scrape(app), "stageflow_queue_jobs") == before  # cached: Redis was not asked
        monkeypatch.setattr(app.state, "settings", settings.model_copy(update={"METRICS_BACKLOG_TTL_SECONDS": 0}))
        assert sample(await scrape(app), "stageflow_queue_jobs") == before + 1
    finally:
        await redis.zrem(backlog["queue"], extra)
        await redis.aclose()


async def test_an_unreachable_source_reports_nan_and_down(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state, "settings", settings.model_copy(update={"METRICS_BACKLOG_TTL_SECONDS": 0}))
    monkeypatch.setattr(app.state, "redis", None)
    text = await scrape(app)
    assert sample(text, "stageflow_backlog_up", source="redis") == 0
    assert sample(text, "stageflow_queue_jobs") != sample(text, "stageflow_queue_jobs")  # NaN
    assert sample(text, "stageflow_backlog_up", source="database") == 1
