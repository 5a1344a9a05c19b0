"""The route index in front of FastAPI's scan picks, for every route of the app, the route the full scan picks."""

import re
import uuid

import httpx
import pytest
from starlette.routing import BaseRoute, Match

from app.api.route_index import PrefixDispatch, may_match, path_key, route_prefixes
from app.main import create_app


def _full_scan(routes: list[BaseRoute], scope: dict) -> BaseRoute | None:
    return next((route for route in routes if route.matches(dict(scope))[0] == Match.FULL), None)


def _sample_paths(app) -> list[tuple[str, str]]:
    filler = str(uuid.UUID(int=7))
    paths = []
    for route in app.routes:
        for context in getattr(route, "effective_route_contexts", lambda: [])():
            path = re.sub(r"\{[^}]+\}", filler, context.path_format)
            for method in sorted(getattr(context, "methods", None) or {"GET"}):
                paths.append((method, path))
    return paths


def test_every_route_is_found_as_the_full_scan_finds_it() -> None:
    app = create_app()
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, PrefixDispatch)
    samples = [*_sample_paths(app), ("GET", "/nowhere"), ("GET", "/api/v1/elements/"), ("DELETE", "/healthz")]
    assert len(samples) > 150
    for method, path in samples:
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
        expected = _full_scan(app.router.routes, scope)
        found = next((r for r in dispatch._candidates(path) if r.matches(dict(scope))[0] == Match.FULL), None)
        assert found is expected, (method, path)


@pytest.mark.parametrize(
    ("path", "prefixes", "expected"),
    [
        ("/api/v1/elements/42", ("/api/v1/elements/",), True),
        ("/api/v1/elements/42", ("/api/v1/entity-types/",), False),
        ("/api/v1/automation/rules/order", ("/api/v1/automation/rules/order",), True),
        ("/healthz", ("/api/v1/",), False),
        ("/api", ("/api/v1/elements/",), True),  # a superset is fine: FastAPI still matches exactly
        ("/anything", None, True),
    ],
)
def test_a_path_keeps_every_route_it_could_match(path: str, prefixes: tuple[str, ...] | None, expected: bool) -> None:
    assert may_match(path_key(path), prefixes) is expected


def test_route_prefixes_of_an_included_router() -> None:
    app = create_app()
    health = next(r for r in app.router.routes if route_prefixes(r) and "/healthz" in (route_prefixes(r) or ()))
    assert set(route_prefixes(health) or ()) >= {"/healthz", "/readyz"}


async def test_answers_unchanged_for_misses_and_wrong_methods() -> None:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.delete("/healthz")).status_code == 405
        assert (await client.get("/healthz")).json() == {"status": "ok"}
