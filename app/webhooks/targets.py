"""Where webhooks may go: http(s) URLs whose every address is globally routable, unless the operator allows it.

Checked twice: when a URL is saved (`url_problem`, without DNS: the literal, scheme, port and obviously local names),
and when it is sent (`resolve_checked`: every address the host resolves to, and the request goes to the checked one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from contextvars import ContextVar
from urllib.parse import SplitResult, urlsplit

from app.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges `is_global` lets through (or that only unwrapping would judge) that must not be reached from a server:
# shared address space (CGNAT), IETF protocol assignments, multicast, NAT64 (which reaches IPv4 through a
# gateway, private ones included), 6to4 and Teredo (IPv4 inside), deprecated site-local, discard-only.
DENIED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2002::/16",
        "2001::/32",
        "fec0::/10",
        "ff00::/8",
        "100::/64",
    )
)
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class TargetRefused(Exception):
    """The URL may not be called: malformed, or an address webhooks may not reach.

    `permanent` when no retry can help (a malformed URL, a refused literal address); a name that resolves to a
    refused address may resolve elsewhere later.
    """

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


def allowed_networks(setting: str) -> list[Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]


# The API app's WEBHOOK_ALLOWED_NETWORKS for the request being served (set per request by the app, so two apps in a
# process keep their own); outside a request, the process settings.
allowed_in_request: ContextVar[list[Network] | None] = ContextVar("webhook_allowed_networks", default=None)


def configured_allowed() -> list[Network]:
    """The allowed networks for checks made with no settings at hand: a URL being saved."""
    allowed = allowed_in_request.get()
    return allowed if allowed is not None else allowed_networks(get_settings().WEBHOOK_ALLOWED_NETWORKS)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        value = int(address)
        if value >> 32 == 0 and value > 1:  # ::a.b.c.d (`::` and `::1` are themselves)
            return ipaddress.IPv4Address(value)
    return address


def _in(address: IPAddress, networks: list[Network] | tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def address_problem(address: IPAddress, allowed: list[Network]) -> str | None:
    """Why an address may not be called (None when it may): only globally routable unicast, or an allowed network."""
    inner = unwrap(address)
    if _in(address, allowed) or _in(inner, allowed):
        return None
    denied = (
        _in(address, DENIED)
        or _in(inner, DENIED)
        or not inner.is_global
        or inner.is_private
        or inner.is_loopback
        or inner.is_link_local
        or inner.is_multicast
        or inner.is_reserved
        or inner.is_unspecified
        or (isinstance(inner, ipaddress.IPv6Address) and inner.is_site_local)
    )
    return f"{address} is not a globally routable address" if denied else None


def _literal(host: str) -> IPAddress | None:
    """The address a host names by itself: `1.2.3.4`, `[::1]`, and the forms resolvers accept (`2130706433`,
    `0x7f.1`, `127.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def split_url(url: str) -> tuple[SplitResult, str, int]:
    """Parse a webhook URL: (parts, host, port); TargetRefused when it is malformed or not http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 literal…
        raise TargetRefused(f"malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the URL must be http or https")
    if not host:
        raise TargetRefused("the URL has no host")
    if any(ord(char) <= 32 or char in "\\%" for char in host):
        raise TargetRefused("the URL's host is malformed")
    if port == 0:
        raise TargetRefused("port 0 cannot be called")
    return parts, host, port or (443 if parts.scheme == "https" else 80)


def url_problem(url: str, allowed: list[Network]) -> str | None:
    """What is wrong with a URL before any DNS lookup (None when it may be saved); resolution is checked at send."""
    try:
        _, host, _ = split_url(url)
    except TargetRefused as exc:
        return str(exc)
    literal = _literal(host)
    if literal is not None:
        return address_problem(literal, allowed)
    name = host.rstrip(".").lower()
    local = name in LOCAL_NAMES or name.endswith(".localhost")  # RFC 6761: always loopback
    return f"{host} is a local name" if local and not _in(LOOPBACK, allowed) else None


async def resolve_checked(host: str, port: int, allowed: list[Network]) -> IPAddress:
    """The address to connect to: every address the host resolves to must pass (no mixing in a private one)."""
    literal = _literal(host)
    if literal is not None:
        problem = address_problem(literal, allowed)
        if problem is not None:
            raise TargetRefused(problem)
        return unwrap(literal)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}", permanent=False) from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address", permanent=False)
    for address in addresses:
        if address_problem(address, allowed) is not None:
            raise TargetRefused(f"{host} resolves to {address}, not a globally routable address", permanent=False)
    return unwrap(addresses[0])
