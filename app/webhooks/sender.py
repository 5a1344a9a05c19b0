"""Sends one signed webhook request to a checked address, under a total deadline, reading at most a few KiB back.

The addresses the host resolves to are checked at send time (`targets.resolve_checked`) and the request goes to the
checked address (the Host header and TLS SNI keep the name), so DNS rebinding cannot slip a private address in
afterwards. The deadline covers resolution, connection, upload and the response: a server that drips its answer
byte by byte cannot hold a worker beyond it.
"""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import orjson

from app.kit.signing import check_secret, sign
from app.webhooks.targets import Network, TargetRefused, allowed_networks, resolve_checked, split_url

__all__ = ["MAX_RESPONSE_BYTES", "Outcome", "TargetRefused", "allowed_networks", "send", "signed_headers"]

MAX_RESPONSE_BYTES = 64 * 1024  # what is read of an answer: its status and the start of its body are all we keep


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None
    permanent: bool = False  # no retry can help (a malformed URL or secret, a refused address): dead-letter it now

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


FORM = "bitrix"  # a delivery format whose body is a flat map of form fields (a Bitrix24 event: app/bitrix)


def encode_body(body: dict[str, object], body_format: str | None) -> tuple[bytes, str]:
    """The bytes sent and their content type: JSON, or for the form format `key=value&…` in the body's order."""
    if body_format == FORM:
        return urlencode([(str(k), "" if v is None else str(v)) for k, v in body.items()]).encode(), FORM_TYPE
    return orjson.dumps(body), "application/json"


FORM_TYPE = "application/x-www-form-urlencoded"


def signed_headers(secret: str, message_id: str, body: bytes, content_type: str = "application/json") -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "content-type": content_type,
        "user-agent": "Stageflow-Webhooks/1",
        "accept-encoding": "identity",  # the capped read counts bytes on the wire: no decompression bomb
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


async def send(
    http: httpx.AsyncClient,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: dict[str, object],
    allowed: list[Network],
    timeout_seconds: float,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    body_format: str | None = None,
) -> Outcome:
    started = time.perf_counter()
    try:
        parts, host, port = split_url(url)
        content, content_type = encode_body(body, body_format)
    except (TargetRefused, TypeError) as exc:
        return Outcome(None, _ms(started), f"refused: {exc}", permanent=True)
    try:
        check_secret(secret)
        headers = signed_headers(secret, message_id, content, content_type)
    except (ValueError, TypeError):  # not base64 (binascii.Error is a ValueError), not ASCII…
        return Outcome(None, _ms(started), "refused: the signing secret is malformed", permanent=True)
    headers["host"] = parts.netloc.rsplit("@", 1)[-1]
    try:
        async with asyncio.timeout(timeout_seconds):
            address = await resolve_checked(host, port, allowed)
            literal = f"[{address}]" if address.version == 6 else str(address)
            netloc = f"{literal}:{parts.port}" if parts.port else literal
            target = parts._replace(netloc=netloc, path=parts.path or "/", fragment="").geturl()
            async with http.stream(
                "POST",
                target,
                content=content,
                headers=headers,
                timeout=timeout_seconds,
                follow_redirects=False,  # a redirect would reach an address nobody checked
                extensions={"sni_hostname": host},
            ) as response:
                excerpt = await _read_capped(response, max_response_bytes)
    except TargetRefused as exc:
        return Outcome(None, _ms(started), f"refused: {exc}", permanent=exc.permanent)
    except TimeoutError:
        return Outcome(None, _ms(started), f"timed out: no complete answer within {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:1000])
    status = response.status_code
    error = None if 200 <= status < 300 else f"HTTP {status}: {excerpt[:300]}"
    return Outcome(status, _ms(started), error)


async def _read_capped(response: httpx.Response, limit: int) -> str:
    """At most `limit` bytes of the body; the rest is never read (the connection is dropped with the stream)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: limit - size])
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks).decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
