"""Failed logins counted per account and per client address, in Redis.

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
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import TooManyRequests
from app.settings import Settings

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
