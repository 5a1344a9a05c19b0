"""In-process caches kept current by PostgreSQL: triggers `pg_notify('stageflow_cache', '<kind>:<key>')` in the
writing transaction (migration 0005), and a listener here drops the named entry when that transaction commits.

Notifications can be missed while the listening connection is down, so every entry also has a short lifetime
(`MAX_STALENESS`): that is the upper bound on how stale a cache here can be. While the listener is not connected the
caches are bypassed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import asyncpg

logger = logging.getLogger(__name__)

CHANNEL = "stageflow_cache"
MAX_STALENESS = 5.0  # seconds
K = TypeVar("K")
V = TypeVar("V")


class TimedCache(Generic[K, V]):
    """A bounded LRU whose entries expire after MAX_STALENESS and are dropped by notifications."""

    def __init__(self, kind: str, size: int, parse_key: Callable[[str], K]) -> None:
        self.kind = kind
        self.size = size
        self.parse_key = parse_key
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        _caches[kind] = self

    def get(self, key: K) -> V | None:
        if not listener.connected:
            return None
        hit = self._entries.get(key)
        if hit is None:
            return None
        if time.monotonic() - hit[0] > MAX_STALENESS:
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V, *, loaded_at: float) -> None:
        """Store a value read at `loaded_at` (taken before the read, so a notification during it wins)."""
        if loaded_at < listener.cleared_at.get(self.kind, 0.0):
            return
        self._entries[key] = (loaded_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, raw_key: str) -> None:
        try:
            self._entries.pop(self.parse_key(raw_key), None)
        except ValueError:
            self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()


_caches: dict[str, TimedCache[Any, Any]] = {}


class Listener:
    """One LISTEN connection per process; reconnects, and clears every cache whenever it may have missed news."""

    def __init__(self) -> None:
        self.connected = False
        self.cleared_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        kind, _, key = payload.partition(":")
        cache = _caches.get(kind)
        if cache is not None:
            self.cleared_at[kind] = time.monotonic()
            cache.drop(key)

    def forget(self, kind: str, key: str) -> None:
        """Drop an entry this process knows it changed, without waiting for the notification."""
        self._on_notify(None, 0, CHANNEL, f"{kind}:{key}")

    def _clear_all(self) -> None:
        now = time.monotonic()
        for kind, cache in _caches.items():
            self.cleared_at[kind] = now
            cache.clear()

    async def _run(self, dsn: str) -> None:
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(dsn, server_settings={"application_name": "stageflow-cache"})
                await connection.add_listener(CHANNEL, self._on_notify)
                self._clear_all()
                self.connected = True
                while not connection.is_closed():  # noqa: ASYNC110 (asyncpg has no "closed" event to wait on)
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down or restarting: serve uncached until it is back
                logger.warning("cache listener disconnected: %s", exc)
            finally:
                self.connected = False
                self._clear_all()
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(1.0)

    async def start(self, dsn: str) -> None:
        """Start listening; waits (a few seconds at most) for the first connection, uncached until then."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(dsn))
        deadline = time.monotonic() + 5.0
        while not self.connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False


listener = Listener()
