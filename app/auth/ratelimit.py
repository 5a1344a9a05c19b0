"""Failed logins counted per account and per client address, in Redis; and every request's token bucket per caller.

Redis, not PostgreSQL: the counts are short-lived and worth nothing once their window passes, an attack is a flood of
failures (INCR in memory, expiring by itself, instead of a row written and vacuumed per guess), and every API process
shares them. Losing them (a Redis restart) only resets the windows. When Redis is unreachable (or not configured), each
process counts in its own memory meanwhile, so logins neither fail nor go unlimited.

A window is fixed: it starts with the first failure and lasts LOGIN_FAILURE_WINDOW_SECONDS. The account is the e-mail
(lower case), whether or not such a user exists (in any workspace), so a limited login answers the same 429 for both.
An IPv6 client counts by its /64 network (one host usually holds a whole /64). Only failures count; a successful
login clears its account's count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.auth.actor import Actor
from app.errors import TooManyRequests
from app.settings import RateLimit, Settings, WorkspaceRateLimit

logger = logging.getLogger("stageflow.auth")
PREFIX = "stageflow:login-failures:"


@dataclass(frozen=True)
class Counter:
    key: str
    limit: int


def _network(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginLimiter:
    def __init__(
        self,
        redis: Redis | None,
        *,
        per_account: int,
        per_address: int,
        window_seconds: int,
        memory_size: int = 100_000,
    ) -> None:
        self.redis = redis
        self.per_account = per_account
        self.per_address = per_address
        self.window = window_seconds
        self._memory: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (failures, window ends)
        self._memory_size = memory_size

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None) -> LoginLimiter:
        return cls(
            redis,
            per_account=settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
            per_address=settings.LOGIN_MAX_FAILURES_PER_ADDRESS,
            window_seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS,
        )

    def _counters(self, account: str, address: str | None) -> list[Counter]:
        digest = hashlib.sha256(account.encode()).hexdigest()  # no e-mail addresses in Redis
        counters = [Counter(f"{PREFIX}account:{digest}", self.per_account)]
        if address:
            counters.append(Counter(f"{PREFIX}address:{_network(address)}", self.per_address))
        return counters

    async def check(self, account: str, address: str | None) -> None:
        """Raise TooManyRequests (with the seconds until the window ends) when a count has reached its limit."""
        counters = self._counters(account, address)
        states = await self._read([c.key for c in counters])
        waits = [ttl for counter, (count, ttl) in zip(counters, states, strict=True) if count >= counter.limit]
        if waits:
            raise TooManyRequests("Too many failed logins: try again later", retry_after=max(1, math.ceil(max(waits))))

    async def failed(self, account: str, address: str | None) -> None:
        keys = [c.key for c in self._counters(account, address)]
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    for key in keys:
                        pipe.set(key, 0, ex=self.window, nx=True)  # the window starts with the first failure
                        pipe.incr(key)
                    await pipe.execute()
                return
            except RedisError as exc:
                logger.warning("login failures counted in memory: Redis is unreachable (%s)", exc)
        now = time.monotonic()
        for key in keys:
            count, ends = self._memory_state(key, now)
            self._memory[key] = (count + 1, ends if count else now + self.window)
            self._memory.move_to_end(key)
        while len(self._memory) > self._memory_size:
            self._memory.popitem(last=False)

    async def succeeded(self, account: str) -> None:
        key = self._counters(account, None)[0].key
        self._memory.pop(key, None)
        if self.redis is not None:
            try:
                await self.redis.delete(key)
            except RedisError as exc:
                logger.warning("could not clear login failures in Redis: %s", exc)

    async def _read(self, keys: list[str]) -> list[tuple[int, float]]:
        """(failures, seconds left in the window) per key."""
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.get(key)
                        pipe.ttl(key)
                    replies = await pipe.execute()
                return [(int(replies[i] or 0), max(float(replies[i + 1]), 1.0)) for i in range(0, len(replies), 2)]
            except RedisError as exc:
                logger.warning("login failures read from memory: Redis is unreachable (%s)", exc)
        now = time.monotonic()
        return [(count, ends - now) for count, ends in (self._memory_state(key, now) for key in keys)]

    def _memory_state(self, key: str, now: float) -> tuple[int, float]:
        count, ends = self._memory.get(key, (0, now))
        if ends <= now:
            self._memory.pop(key, None)
            return 0, now
        return count, ends


# --- requests per caller -------------------------------------------------------------------------------------------

BUCKET_PREFIX = "stageflow:rate:"
# One token bucket per caller, refilled lazily on Redis's own clock (API processes' clocks may differ): reads the
# state, refills it for the time elapsed, takes up to ARGV[3] whole tokens if there are any, writes it back, all in
# one script, so concurrent requests of one key (any process) cannot overspend it. Returns the tokens taken and the
# seconds to wait for one when none was. The key expires once the bucket would be full again (an idle caller costs
# nothing).
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local taken = math.min(want, math.floor(tokens))
local wait = 0
if taken >= 1 then
  tokens = tokens - taken
else
  taken = 0
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + 1) * 1000))
return {taken, string.format('%.6f', wait)}
"""
# A process takes a busy caller's tokens a few at a time (a lease: 1/LEASE_SHARE of a second's refill, at most
# LEASE_MAX) and spends them without asking Redis again, for at most LEASE_SECONDS; what it does not spend by then is
# lost, never spent twice. Tight limits (a lease of 1) are counted request by request.
LEASE_SHARE = 50
LEASE_MAX = 100
LEASE_SECONDS = 1.0
# After Redis fails, requests pass unchecked for this long before it is tried again (no timeout paid per request).
REDIS_RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 30.0


class RateLimits:
    """Which bucket size applies to an actor: the workspace's limit for one of the actor's roles, else the
    workspace's own, else RATE_LIMITS_BY_ROLE's for one of the actor's roles, else the default. A role matches by
    its name (case-insensitive: a custom role's, or admin / editor / viewer); a role without a limit of its own
    falls back to its level's. With several roles, the most generous limit wins (as their permissions add up)."""

    def __init__(
        self,
        default: RateLimit,
        by_role: dict[str, RateLimit],
        by_workspace: dict[uuid.UUID, WorkspaceRateLimit],
    ) -> None:
        self.default = default
        self.by_role = {name.casefold(): limit for name, limit in by_role.items()}
        self.by_workspace = {
            workspace_id: ({name.casefold(): limit for name, limit in limits.roles.items()}, limits.limit)
            for workspace_id, limits in by_workspace.items()
        }
        self._resolved: dict[tuple[uuid.UUID, tuple[str, ...], str], RateLimit] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        default = RateLimit(per_second=settings.RATE_LIMIT_PER_SECOND, burst=settings.RATE_LIMIT_BURST)
        return cls(default, settings.RATE_LIMITS_BY_ROLE, settings.RATE_LIMITS_BY_WORKSPACE)

    def for_actor(self, actor: Actor) -> RateLimit:
        names = tuple(sorted({role.name.casefold() for role in actor.grants.roles if role.name}))
        key = (actor.workspace_id, names, actor.role.value)
        limit = self._resolved.get(key)
        if limit is None:
            limit = self._resolve(actor.workspace_id, names, actor.role.value)
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[key] = limit
        return limit

    def _resolve(self, workspace_id: uuid.UUID, names: tuple[str, ...], level: str) -> RateLimit:
        workspace_roles, workspace_limit = self.by_workspace.get(workspace_id, ({}, None))
        return (
            _most_generous(workspace_roles, names, level)
            or workspace_limit
            or _most_generous(self.by_role, names, level)
            or self.default
        )


def _most_generous(limits: dict[str, RateLimit], names: tuple[str, ...], level: str) -> RateLimit | None:
    found = [limits[name] for name in names if name in limits] or ([limits[level]] if level in limits else [])
    if not found:
        return None
    unlimited = [limit for limit in found if limit.per_second == 0]
    return unlimited[0] if unlimited else max(found, key=lambda limit: (limit.per_second, limit.burst))


def bucket_key(actor: Actor) -> str | None:
    """A person's tokens share one bucket (however many they hold); each API key has its own."""
    if actor.user_id is not None:
        return f"{BUCKET_PREFIX}user:{actor.user_id}"
    if actor.api_key_id is not None:
        return f"{BUCKET_PREFIX}key:{actor.api_key_id}"
    return None  # the system itself


class RequestLimiter:
    """Takes one token per request from the caller's bucket in Redis (one round trip; a busy caller's tokens a few
    at a time, see LEASE_SHARE), or raises TooManyRequests with the seconds until a token is there. Redis down or
    slow does not take the API down: requests pass unchecked (fail open) and a warning is logged, at most every
    WARN_EVERY_SECONDS."""

    def __init__(self, redis: Redis | None, limits: RateLimits) -> None:
        self.redis = redis
        self.limits = limits
        self._script = redis.register_script(BUCKET_SCRIPT) if redis is not None else None
        self._skip_until = 0.0
        self._warned_at = -math.inf
        self._leases: dict[str, tuple[int, float]] = {}  # bucket -> (tokens this process holds, until when)

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimiter:
        """Its own Redis connections with short timeouts: a hung Redis costs a request half a second at most."""
        redis = (
            Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
            if settings.REDIS_URL
            else None
        )
        return cls(redis, RateLimits.from_settings(settings))

    async def admit(self, actor: Actor) -> None:
        limit = self.limits.for_actor(actor)
        key = bucket_key(actor)
        if limit.per_second == 0 or key is None or self._script is None:
            return
        now = time.monotonic()
        held, until = self._leases.get(key, (0, 0.0))
        if held > 0 and now < until:
            self._leases[key] = (held - 1, until)
            return
        if now < self._skip_until:
            return
        want = max(1, min(LEASE_MAX, int(min(limit.per_second, limit.burst) / LEASE_SHARE)))
        try:
            taken, wait = await self._script(keys=[key], args=[limit.per_second, limit.burst, want])
        except (RedisError, OSError) as exc:
            self._skip_until = now + REDIS_RETRY_SECONDS
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning("rate limits not applied: Redis is unreachable (%s)", exc)
            return
        if int(taken) == 0:
            raise TooManyRequests(
                f"Too many requests: this caller may send {limit.per_second:g} a second (bursts of {limit.burst})",
                retry_after=math.ceil(float(wait)),
            )
        if int(taken) > 1:
            if len(self._leases) > 10_000:
                self._leases.clear()
            self._leases[key] = (int(taken) - 1, now + LEASE_SECONDS)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
