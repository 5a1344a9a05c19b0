from http import HTTPStatus

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.observability import Metrics
from app.readmodel.ddl import HAS_TRIGRAMS_SQL
from app.settings import Settings

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is unreachable"}})
async def readyz(request: Request) -> JSONResponse:
    """PostgreSQL and Redis are reachable (`details` says what optional PostgreSQL features are in use)."""
    checks: dict[str, str] = {}
    details: dict[str, str] = {}
    try:
        async with request.app.state.engine.connect() as connection:
            trigram = await connection.scalar(text(HAS_TRIGRAMS_SQL))
        checks["database"] = "ok"
        # Search still works without it, by scanning: say so where operators look.
        details["search"] = (
            "trigram index (pg_trgm)" if trigram else "no pg_trgm on this server: substring search scans"
        )
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    redis = request.app.state.redis
    try:
        if redis is None:
            raise RuntimeError("REDIS_URL is not set")
        await redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks, "details": details},
        status_code=HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency per route, database pool use, and the automation backlog (arq's
    queue depth, the lag of runs, deliveries and outbox events, unfinished runs), read at most every
    METRICS_BACKLOG_TTL_SECONDS."""
    state = request.app.state
    settings: Settings = state.settings
    collected: Metrics = state.metrics
    pool = state.engine.pool
    collected.pool_in_use.set(pool.checkedout())
    collected.pool_size.set(pool.size())
    read_pool = state.read_pool
    collected.read_pool_size.set(read_pool.get_size())
    collected.read_pool_in_use.set(read_pool.get_size() - read_pool.get_idle_size())
    await collected.backlog.refresh(read_pool, state.redis, settings.METRICS_BACKLOG_TTL_SECONDS)
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
