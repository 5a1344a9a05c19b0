"""CORS for browser frontends (CORS_ORIGINS): real preflight requests for an allowed and a refused origin, and the
headers a browser needs on the answers themselves, errors included."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.conftest import Tenant

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"


@pytest.fixture(scope="module")
async def cors_app(settings: Settings) -> AsyncIterator[FastAPI]:
    configured = settings.model_copy(
        update={"CORS_ORIGINS": f" {ALLOWED}/ , https://admin.example.com", "DB_POOL_SIZE": 2}
    )
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        yield application


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.example.com")


def preflight_headers(
    origin: str, method: str = "PATCH", headers: str = "authorization, content-type"
) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def test_a_preflight_from_an_allowed_origin_is_answered(cors_app: FastAPI) -> None:
    headers = preflight_headers(ALLOWED, "PATCH", "Authorization, Content-Type, If-Match, Idempotency-Key")
    async with browser(cors_app) as http:
        for path in ("/api/v1/elements/5b0f5bfa-0c43-4c62-a5d5-2f1d0c1e1e1e", "/graphql", "/api/v1/auth/login"):
            response = await http.options(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["access-control-allow-origin"] == ALLOWED
            assert response.headers["access-control-allow-credentials"] == "true"
            allowed_methods = response.headers["access-control-allow-methods"]
            assert {"GET", "POST", "PATCH", "DELETE"} <= {m.strip() for m in allowed_methods.split(",")}
            allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
            assert {"authorization", "content-type", "if-match", "idempotency-key"} <= allowed_headers
            assert int(response.headers["access-control-max-age"]) > 0


async def test_a_preflight_from_another_origin_or_asking_for_other_headers_is_refused(cors_app: FastAPI) -> None:
    async with browser(cors_app) as http:
        for headers in (
            preflight_headers(REFUSED),
            preflight_headers("https://app.example.com.evil.net"),
            preflight_headers("http://app.example.com"),  # another scheme is another origin
            preflight_headers(ALLOWED, "PATCH", "authorization, x-secret-header"),
        ):
            response = await http.options("/api/v1/entity-types", headers=headers)
            assert response.status_code == 400, headers
            assert response.headers.get("access-control-allow-origin") in (None, ALLOWED)
            if headers["Origin"] != ALLOWED:
                assert "access-control-allow-origin" not in response.headers


async def test_answers_carry_the_headers_a_browser_needs_errors_included(
    cors_app: FastAPI, app: FastAPI, tenant: Tenant
) -> None:
    async with browser(cors_app) as http:
        ok = await http.get(
            "/api/v1/entity-types", headers={"Origin": ALLOWED, "Authorization": f"Bearer {tenant.admin_key}"}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ALLOWED
        assert ok.headers["access-control-allow-credentials"] == "true"
        exposed = {h.strip().lower() for h in ok.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "retry-after", "location", "www-authenticate", "x-request-id"} <= exposed
        assert "origin" in ok.headers["vary"].lower()
        # A refusal is readable by the frontend too (it must see the 401 to refresh its token).
        refused = await http.get("/api/v1/me", headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ALLOWED
        # Another origin's page gets no CORS headers: the browser keeps the answer from it.
        foreign = await http.get(
            "/api/v1/entity-types", headers={"Origin": REFUSED, "Authorization": f"Bearer {tenant.admin_key}"}
        )
        assert "access-control-allow-origin" not in foreign.headers


async def test_without_cors_origins_there_is_no_cors(app: FastAPI) -> None:
    async with browser(app) as http:
        response = await http.options("/api/v1/entity-types", headers=preflight_headers(ALLOWED))
    assert "access-control-allow-origin" not in response.headers


def test_a_wildcard_allows_any_origin_without_credentials(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"CORS_ORIGINS": "*"}))
    cors = next(m for m in application.user_middleware if getattr(m.cls, "__name__", "") == "CORSMiddleware")
    assert cors.kwargs["allow_origins"] == ["*"]
    assert cors.kwargs["allow_credentials"] is False
