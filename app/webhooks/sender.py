"""Sends one signed webhook request, refusing private, loopback and link-local targets.

The check is on the addresses the host resolves to at send time, and the request goes to the checked address
(the Host header and TLS SNI keep the name), so DNS rebinding cannot slip a private address in afterwards.
"""

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from app.kit.signing import sign

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(Exception):
    """The URL resolves to an address webhooks may not reach."""


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def allowed_networks(setting: str) -> list[Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]


def _forbidden(address: IPAddress) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def resolve_checked(host: str, port: int, allowed: list[Network]) -> IPAddress:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address")
    for address in addresses:
        if _forbidden(address) and not any(address in network for network in allowed):
            raise TargetRefused(f"{host} resolves to {address}, a private, loopback or link-local address")
    return addresses[0]


def signed_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "user-agent": "Stageflow-Webhooks/1",
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
) -> Outcome:
    started = time.perf_counter()
    content = orjson.dumps(body)
    try:
        # One deadline for the whole request: httpx's timeouts are per phase, and a receiver that answers a byte at
        # a time would otherwise keep the attempt alive past its lease.
        async with asyncio.timeout(timeout_seconds):
            return await _send(http, url, secret, message_id, content, allowed, timeout_seconds, started)
    except TimeoutError:
        return Outcome(None, _ms(started), f"timed out: no complete answer within {timeout_seconds:g}s")


async def _send(
    http: httpx.AsyncClient,
    url: str,
    secret: str,
    message_id: str,
    content: bytes,
    allowed: list[Network],
    timeout_seconds: float,
    started: float,
) -> Outcome:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await resolve_checked(host, port, allowed)
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = signed_headers(secret, message_id, content)
        headers["host"] = parts.netloc.rsplit("@", 1)[-1]
        response = await http.post(
            target, content=content, headers=headers, timeout=timeout_seconds, extensions={"sni_hostname": host}
        )
    except TargetRefused as exc:
        return Outcome(None, _ms(started), f"refused: {exc}")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:1000])
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:300]}"
    return Outcome(response.status_code, _ms(started), error)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
