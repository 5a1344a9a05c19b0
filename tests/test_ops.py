import httpx
from fastapi import FastAPI


async def test_health_ready_and_metrics(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as plain:
        assert (await plain.get("/healthz")).json() == {"status": "ok"}
        ready = await plain.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        await client.get("/entity-types")
        metrics = (await plain.get("/metrics")).text
        assert 'stageflow_http_requests_total{method="GET",route="/api/v1/entity-types",status="200"}' in metrics
        assert "stageflow_http_request_duration_seconds_bucket" in metrics
        assert "stageflow_db_pool_in_use" in metrics


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/entity-types", headers={"X-Request-ID": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    generated = await client.get("/entity-types")
    assert len(generated.headers["x-request-id"]) == 32


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_text_the_database_cannot_store_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/entity-types", json={"code": "deal", "title": "nul \u0000 inside"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/entity-types/deal")).status_code == 404
