"""gql's httpx transport uses `httpx2` when that is installed (huggingface-hub, from the triage extra, brings it in),
and then refuses an `httpx` ASGI transport: the one handed to gql must come from the library gql uses."""

from typing import Any

from gql.transport import httpx as gql_httpx


def asgi_transport(app: Any, **options: Any) -> Any:
    return gql_httpx.httpx.ASGITransport(app=app, **options)
