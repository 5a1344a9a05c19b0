"""The benchmark's HTTP client: aiohttp by default, httpx with `--client httpx` (runs A–H used it).

The client runs on the same 2 cores as the API and PostgreSQL, so every millisecond of CPU it spends per request is
taken from what it measures. Against a health check with 16 in flight, httpx spent about 2.8 ms of CPU per request
and aiohttp 0.25–0.4 ms; in the benchmark's scenarios httpx took 1.4–3 ms per request, more than the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import orjson

CLIENTS = ("aiohttp", "httpx")
KEEPALIVE_SECONDS = 2.0


class Reply(Protocol):
    """What the runner reads of a response (httpx.Response has it too)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    @property
    def request(self) -> Any: ...

    def json(self) -> Any: ...


class Client(Protocol):
    async def request(self, method: str, url: str, **kwargs: Any) -> Any: ...

    async def get(self, url: str, **kwargs: Any) -> Any: ...

    async def post(self, url: str, **kwargs: Any) -> Any: ...

    async def delete(self, url: str, **kwargs: Any) -> Any: ...


@dataclass
class Sent:
    method: str
    url: str


@dataclass
class Response:
    status_code: int
    content: bytes
    request: Sent

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class LightClient:
    """The few calls of httpx.AsyncClient the runner makes, over aiohttp; the body is always read whole."""

    def __init__(self, base_url: str, headers: dict[str, str], connections: int, timeout: float) -> None:
        self._session = aiohttp.ClientSession(
            base_url=base_url,
            headers=headers,
            # An idle connection is dropped by the client before the server's keep-alive (uvicorn: 5 s) ends it:
            # otherwise a request can go out on a connection whose close is already on its way back, and fail
            # with ServerDisconnectedError (a 1M load did, at about 870,000).
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=KEEPALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=timeout),
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpx's signature, which the runner calls)
    ) -> Response:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=timeout)}
        if json is not None:
            extra["json"] = json
        async with self._session.request(
            method, url, params=params, data=content, headers=headers, **extra
        ) as response:
            body = await response.read()
            return Response(response.status, body, Sent(method, str(response.url)))

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Response:
        return await self.request("DELETE", url, **kwargs)

    async def __aenter__(self) -> LightClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()


def open_client(kind: str, base_url: str, headers: dict[str, str], connections: int, timeout: float) -> Any:
    """An async context manager giving a Client of the kind asked for."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=connections)
        return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout)
    return LightClient(base_url, headers, connections, timeout)
