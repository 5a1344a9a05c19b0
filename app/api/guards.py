"""In front of every route (REST, GraphQL, incoming hooks): JSON nesting bounded before parsing; the webhook
networks the app allows, for the services that check a URL being saved."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.rest.problems import problem
from app.kit.jsonlimits import MAX_JSON_DEPTH, depth_error, too_deep
from app.settings import Settings
from app.webhooks.targets import Network, allowed_in_request, allowed_networks


class JsonTooDeep(HTTPException):
    """Raised while the body streams in: FastAPI's body reading lets an HTTPException through as it is."""

    def __init__(self, location: str, limit: int) -> None:
        super().__init__(HTTPStatus.UNPROCESSABLE_ENTITY, f"The {location} nests too deeply")
        self.location = location
        self.limit = limit

    def response(self) -> JSONResponse:
        return problem(
            422, "Validation error", str(self.detail), "validation-error", [depth_error(self.location, self.limit)]
        )


class JsonDepthGuard:
    """Plain ASGI: refuses (422) a query string or a JSON body that nests deeper than MAX_JSON_DEPTH.

    Chunks reach the route as they arrive (a route's own size cap still applies while the body streams); the whole
    body is scanned when its last chunk is read, before the route can parse it.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = (scope.get("query_string") or b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if too_deep(value, self.limit):  # `filter`, GraphQL's `variables`…: JSON in a query parameter
                await JsonTooDeep(name[:100], self.limit).response()(scope, receive, send)
                return
        if not _may_be_json(scope):
            await self.app(scope, receive, send)
            return
        received = bytearray()

        async def guarded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received.extend(message.get("body", b""))
                if not message.get("more_body", False) and too_deep(bytes(received), self.limit):
                    raise JsonTooDeep("body", self.limit)
            return message

        await self.app(scope, guarded_receive, send)


def _may_be_json(scope: Scope) -> bool:
    """JSON, `+json`, or no content type at all (some routes parse a body whatever its declared type)."""
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json") or media in (b"", b"text/plain")
    return True


async def _json_too_deep(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JsonTooDeep)  # noqa: S101
    return exc.response()


class WebhookTargetScope:
    """Plain ASGI: the app's WEBHOOK_ALLOWED_NETWORKS for the services that check a webhook URL being saved."""

    def __init__(self, app: ASGIApp, allowed: list[Network]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = allowed_in_request.set(self.allowed)
        try:
            await self.app(scope, receive, send)
        finally:
            allowed_in_request.reset(token)


def install_guards(app: FastAPI, settings: Settings) -> None:
    app.add_exception_handler(JsonTooDeep, _json_too_deep)
    app.add_middleware(JsonDepthGuard)
    app.add_middleware(WebhookTargetScope, allowed=allowed_networks(settings.WEBHOOK_ALLOWED_NETWORKS))
