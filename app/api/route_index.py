"""Route lookup narrowed by literal path prefix, in front of FastAPI's linear scan.

FastAPI 0.165 finds a route by asking every included router in turn, and each router asks every one of its routes,
with some bookkeeping per candidate. Stageflow includes about thirty routers: a health check, whose route comes after
all of them, spent 60 % of its server CPU matching (0.86 ms a request), and every element request paid for the
routers before its own.

A route's path can only match paths that start with its literal part (what comes before the first `{`). This index
keeps, for each top-level route, the literal prefixes of every route under it, and asks FastAPI to match only the
ones whose prefixes fit the request path, in their original order: the first full match is the one the full scan
would find. Anything else (no full match: a 404, a 405, a redirect for a trailing slash) goes to FastAPI's own scan,
so those answers are unchanged. It relies on FastAPI internals, which `fastapi==0.165.0` in pyproject.toml pins.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRouter, _IncludedRouter, _update_scope
from fastapi.telemetry._api import _route_selected
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Receive, Scope, Send


def _literal(path_format: str) -> str:
    return path_format.split("{", 1)[0]


def route_prefixes(route: BaseRoute) -> tuple[str, ...] | None:
    """The literal prefixes a path must start with to match `route` (None: it cannot tell, always ask it)."""
    if isinstance(route, _IncludedRouter):
        prefixes = []
        for context in route.effective_route_contexts():
            path_format = context.path_format or getattr(context.starlette_route, "path_format", None)
            if not path_format:
                return None
            prefixes.append(_literal(path_format))
        if any(True for _ in route.effective_low_priority_routes()):
            return None
        return tuple(sorted(set(prefixes)))
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str) or not path_format:
        return None
    return (_literal(path_format),)


# Candidate lists are kept per path key; the keys of stray paths (scanners) are not kept beyond this many.
MAX_KEYS = 1024


def path_key(path: str) -> str:
    """The path up to its third `/` after the first (`/api/v1/elements/`), or the whole path when shorter."""
    cut = -1
    for _ in range(4):
        cut = path.find("/", cut + 1)
        if cut < 0:
            return path
    return path[: cut + 1]


def may_match(key: str, prefixes: tuple[str, ...] | None) -> bool:
    """Whether a path with this key can start with one of the prefixes: either is the start of the other."""
    return prefixes is None or any(key.startswith(p) or p.startswith(key) for p in prefixes)


class PrefixDispatch:
    """The router's entry point: FastAPI's matching over the routes that can match, then FastAPI's own scan."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.full_scan = router.app
        self._route_count = -1
        self._index: list[tuple[BaseRoute, tuple[str, ...] | None]] = []
        self._by_key: dict[str, list[BaseRoute]] = {}

    def _candidates(self, path: str) -> list[BaseRoute]:
        if len(self.router.routes) != self._route_count:  # routes included after start-up (tests do): index again
            self._index = [(route, route_prefixes(route)) for route in self.router.routes]
            self._route_count = len(self.router.routes)
            self._by_key = {}
        key = path_key(path)
        candidates = self._by_key.get(key)
        if candidates is None:
            candidates = [route for route, prefixes in self._index if may_match(key, prefixes)]
            if len(self._by_key) < MAX_KEYS:
                self._by_key[key] = candidates
        return candidates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.router.form_limits:
            await self.full_scan(scope, receive, send)
            return
        scope.setdefault("router", self.router)
        for route in self._candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                _update_scope(scope, child_scope)
                _route_selected(scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount))
                await route.handle(scope, receive, send)
                return
        await self.full_scan(scope, receive, send)


def install(app: FastAPI) -> None:
    """Put the index in front of the app's router (when nothing else wraps the router's own entry point)."""
    router: Any = app.router
    if router.middleware_stack == router.app:
        router.middleware_stack = PrefixDispatch(router)
