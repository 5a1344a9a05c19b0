import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

from app.api import ops, route_index
from app.api.graphql.router import mount_graphql, sdl_router
from app.api.guards import install_guards
from app.api.rest import (
    activities,
    alerts,
    analytics,
    api_keys,
    audit,
    auth,
    automation,
    bitrix,
    calendar,
    calltime,
    counters,
    dashboards,
    data_quality,
    departments,
    elements,
    entity_types,
    files,
    imports,
    layouts,
    pipelines,
    relations,
    retention,
    roles,
    routing_policies,
    scoring,
    tasks,
    triage,
    users,
    webhooks,
    workplaces,
)
from app.api.rest.problems import install_problem_handlers
from app.api.ui import mount_ui
from app.auth.ratelimit import RequestLimiter
from app.auth.service import BearerTokens
from app.auth.sessions import Authority
from app.db import make_engine, make_sessionmaker, open_read_pool, plain_dsn
from app.files.storage import use_storage
from app.kit import background
from app.kit.invalidation import listener
from app.observability import Metrics, ObservabilityMiddleware
from app.outbox.dispatcher import run_dispatcher
from app.readmodel import compiler
from app.readmodel.ddl import HAS_TRIGRAMS_SQL, resume_index_builds
from app.settings import Settings, get_settings
from workers.queue import event_sinks

API_PREFIX = "/api/v1"
DESCRIPTION = """Stageflow: a headless backend for user-defined business processes ("smart processes").

Every `/api/v1` route takes `Authorization: Bearer <token>`: an API key (`sf_…`), or a person's access token from
`POST /api/v1/auth/login` (refreshed at `/auth/refresh`). Errors are `application/problem+json`.
"""


def operation_id(route: APIRoute) -> str:
    """The handler's name is the operationId, so generated SDKs get `create_element`, `list_elements`…"""
    return route.name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Production refuses to start without JWT_SECRET (RuntimeError) rather than sign tokens with a guessable key.
    app.state.bearer_tokens = BearerTokens.from_settings(settings)
    owns_engine = not hasattr(app.state, "engine")
    if owns_engine:
        app.state.engine = make_engine(settings, serving=True)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.read_pool = await open_read_pool(settings)
    compiler.TRIGRAM_SEARCH = bool(await app.state.read_pool.fetchval(HAS_TRIGRAMS_SQL))
    await listener.start(plain_dsn(settings.database_url))
    # Read-model indexes a stopped process left half-built are built again, in the background.
    background.start(lambda: resume_index_builds(app.state.sessionmaker))
    app.state.redis = ArqRedis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    app.state.authority = Authority.from_settings(settings, app.state.bearer_tokens.access, app.state.redis)
    app.state.request_limiter = RequestLimiter.from_settings(settings)
    # The outbox dispatcher in the API process: a lone process still delivers events (SKIP LOCKED keeps many safe).
    stop = asyncio.Event()
    dispatcher = None
    if settings.OUTBOX_DISPATCHER_ENABLED and app.state.redis is not None:
        dispatcher = asyncio.create_task(
            run_dispatcher(app.state.sessionmaker, event_sinks(app.state.redis), stop=stop)
        )
    try:
        yield
    finally:
        stop.set()
        if dispatcher is not None:
            await dispatcher
        if app.state.redis is not None:
            await app.state.redis.aclose()
        await app.state.request_limiter.aclose()
        await app.state.read_pool.close()
        if owns_engine:
            await app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Stageflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.file_storage = use_storage(settings)
    # /graphql first: routes are tried in order, and behind every REST router its match cost ~1 ms per request.
    mount_graphql(app, settings)
    for module in (
        auth,
        entity_types,
        pipelines,
        elements,
        relations,
        api_keys,
        automation,
        tasks,
        activities,
        webhooks,
        users,
        roles,
        scoring,
        routing_policies,
        imports,
        counters,
        calendar,
        departments,
        workplaces,
        audit,
        retention,
        layouts,
        files,
        data_quality,
        analytics,
        alerts,
        dashboards,
        calltime,
        triage,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(ops.router)
    # The Bitrix24-compatible facade, outside /api/v1 (its own URL scheme and shapes: app/bitrix).
    app.include_router(bitrix.router)
    if settings.UI_ENABLED:
        mount_ui(app)  # /ui/analytics: a static page drawing the analytics API's numbers with the visitor's token
    app.include_router(sdl_router, prefix=API_PREFIX)
    route_index.install(app)
    install_problem_handlers(app)
    install_guards(app, settings)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    install_cors(app, settings)
    return app


# What a browser frontend sends and may read: Bearer tokens (no cookies needed), JSON, idempotent writes, versions.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match", "X-Request-ID"]
CORS_EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
    "Idempotent-Replayed",
    "X-Request-ID",
    "Content-Disposition",
]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS for the origins in CORS_ORIGINS, outermost, so a preflight is answered before anything else runs.
    `*` allows any origin but then without credentials (browsers refuse credentials for a wildcard)."""
    origins = settings.cors_origins
    if not origins:
        return
    wildcard = "*" in origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if wildcard else origins,
        allow_credentials=not wildcard,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
