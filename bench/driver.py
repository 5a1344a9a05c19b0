"""Bounded-concurrency load driver and latency statistics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import CpuUse, per_op


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return 0.0
    rank = max(1, min(len(sorted_ms), round(q / 100 * len(sorted_ms) + 0.5)))
    return sorted_ms[rank - 1]


@dataclass
class Result:
    name: str
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None
    note: str | None = None
    cpu: CpuUse | None = None  # CPU used while it ran (bench.cpu), when measured

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "name": self.name,
            "count": self.count,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "throughput_per_s": round(self.throughput, 1),
            "p50_ms": round(percentile(ordered, 50), 2),
            "p95_ms": round(percentile(ordered, 95), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "first_error": self.first_error,
            "note": self.note,
            **per_op(self.cpu, self.count),
        }


class RequestFailed(Exception):
    pass


async def run(
    name: str,
    count: int,
    concurrency: int,
    operation: Callable[[int, Callable[[float], None]], Awaitable[None]],
    max_seconds: float | None = None,
) -> Result:
    """Run `operation(i, record)` for i in 0..count-1 with at most `concurrency` in flight (and no new one started
    after `max_seconds`, so one slow scenario cannot stall a run)."""
    result = Result(name)
    next_index = 0
    stop_at = time.perf_counter() + max_seconds if max_seconds else None

    def record(ms: float) -> None:
        result.latencies_ms.append(ms)
        result.count += 1

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and (stop_at is None or time.perf_counter() < stop_at):
            index = next_index
            next_index += 1
            try:
                await operation(index, record)
            except Exception as exc:  # a failed request is counted and reported, the run goes on
                result.errors += 1
                if result.first_error is None:
                    result.first_error = f"{type(exc).__name__}: {exc}"[:500]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
