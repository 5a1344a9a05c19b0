"""CPU time per operation for the benchmark client, the API server and PostgreSQL, read from /proc.

Each scenario runs inside `CpuMeter.measure()`; it adds up utime + stime (all threads) of:

- the client: this process (`time.process_time`, the same kernel counter at a finer grain than /proc's ticks),
  less the sampler thread's own time;
- the server: the process tree started for the API (master and workers), exactly: each live member's own time
  plus what it has collected from children that exited (cutime + cstime);
- PostgreSQL: the backends connected to the benchmark's database (and their parallel workers), found among the
  postmaster's children by their process title and sampled every `interval` seconds (from schedstat, to the
  nanosecond), so that a connection closed during the scenario still counts up to its last sample;
- and, for reference, the whole PostgreSQL server (every database and the background writers): exact like the
  server, but shared with whatever else uses it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
try:
    TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # not a POSIX system: /proc is not read there anyway
    TICK_MS = 10.0
POSTGRES_NAMES = {"postgres", "postmaster"}
_PARALLEL_WORKER = re.compile(r"parallel worker for PID (\d+)")


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat this module uses."""

    pid: int
    ppid: int
    cpu_ms: float  # utime + stime of the process, all its threads
    children_ms: float  # cutime + cstime: the children it has waited for (with their own waited-for children)
    threads: int


def read_stat(pid: int, proc: Path = PROC) -> Stat | None:
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime/stime/cutime/cstime 14-17, threads 20.
    return Stat(
        pid=pid,
        ppid=int(fields[1]),
        cpu_ms=(int(fields[11]) + int(fields[12])) * TICK_MS,
        children_ms=(int(fields[13]) + int(fields[14])) * TICK_MS,
        threads=int(fields[17]),
    )


def runtime_ms(pid: int, proc: Path = PROC) -> float | None:
    """Time on CPU of a single-threaded process (a PostgreSQL backend) to the nanosecond, from /proc/<pid>/schedstat
    where the kernel has it: stat's utime + stime come truncated to 10 ms ticks, which over a few dozen backends
    sampled twice is as large as the floor's whole share. Falls back to stat."""
    try:
        return int((proc / str(pid) / "schedstat").read_bytes().split()[0]) / 1e6
    except (OSError, IndexError, ValueError):
        stat = read_stat(pid, proc)
        return None if stat is None else stat.cpu_ms


def own_ms(stat: Stat, proc: Path = PROC) -> float:
    """A process's own CPU time: to the nanosecond when it has one thread (schedstat covers the main thread only),
    else stat's ticks, which cover every thread."""
    if stat.threads == 1:
        precise = runtime_ms(stat.pid, proc)
        if precise is not None:
            return precise
    return stat.cpu_ms


def list_pids(proc: Path = PROC) -> list[int]:
    return [int(name) for name in os.listdir(proc) if name.isdigit()]


def read_all(proc: Path = PROC) -> dict[int, Stat]:
    stats = {}
    for pid in list_pids(proc):
        stat = read_stat(pid, proc)
        if stat is not None:
            stats[pid] = stat
    return stats


def descendants(root: int, stats: dict[int, Stat]) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in stats.values():
        children[stat.ppid].append(stat.pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tree_cpu_ms(root: int, stats: dict[int, Stat], proc: Path = PROC) -> float | None:
    """CPU used so far by a process tree: its live members' own time plus what they collected from children that
    exited, so a process that ends between two readings is still counted (in its parent's share)."""
    if root not in stats:
        return None
    members = descendants(root, stats) | {root}
    return sum(own_ms(stats[pid], proc) + stats[pid].children_ms for pid in members)


def title(pid: int, proc: Path = PROC) -> str | None:
    """The process title (PostgreSQL backends rewrite theirs to `postgres: [cluster: ]user database host state`)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def comm(pid: int, proc: Path = PROC) -> str | None:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return None


def postmaster_of(backend_pid: int, proc: Path = PROC) -> int | None:
    """The postmaster's pid from one backend's (`SELECT pg_backend_pid()`), when PostgreSQL runs on this machine
    (and in this pid namespace); None otherwise."""
    stat = read_stat(backend_pid, proc)
    if stat is None or comm(backend_pid, proc) not in POSTGRES_NAMES or comm(stat.ppid, proc) not in POSTGRES_NAMES:
        return None
    return stat.ppid


def serves_database(process_title: str | None, database: str, ours: set[int]) -> bool | None:
    """Whether a child of the postmaster works for `database`: a backend connected to it, or a parallel worker of
    such a backend (True); any other PostgreSQL process (False); or too young to tell: a fresh backend keeps the
    postmaster's command line until it has read the startup packet (None)."""
    if process_title is None:
        return False
    if not process_title.startswith("postgres:"):
        return None
    if database in process_title.split():
        return True
    leader = _PARALLEL_WORKER.search(process_title)
    return leader is not None and int(leader.group(1)) in ours


@dataclass
class CpuUse:
    """CPU milliseconds used during one measurement (None: that side was not measured)."""

    client_ms: float
    server_ms: float | None = None
    pg_ms: float | None = None
    pg_server_ms: float | None = None

    def __add__(self, other: CpuUse) -> CpuUse:
        def plus(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return CpuUse(
            self.client_ms + other.client_ms,
            plus(self.server_ms, other.server_ms),
            plus(self.pg_ms, other.pg_ms),
            plus(self.pg_server_ms, other.pg_server_ms),
        )


CPU_COLUMNS = ("client_cpu_ms_per_op", "server_cpu_ms_per_op", "pg_cpu_ms_per_op", "pg_server_cpu_ms_per_op")


def per_op(use: CpuUse | None, count: int) -> dict[str, Any]:
    """The JSON fields of a result: CPU ms per operation on each side, and the totals they come from."""
    if use is None:
        return {**dict.fromkeys(CPU_COLUMNS), "cpu_ms": None}
    sides = {
        "client": use.client_ms,
        "server": use.server_ms,
        "pg": use.pg_ms,
        "pg_server": use.pg_server_ms,
    }
    fields: dict[str, Any] = {
        f"{side}_cpu_ms_per_op": round(ms / count, 3) if ms is not None and count else None
        for side, ms in sides.items()
    }
    fields["cpu_ms"] = {side: None if ms is None else round(ms, 1) for side, ms in sides.items()}
    return fields


class Reading:
    """Filled in when the measurement ends."""

    use: CpuUse | None = None


class _Sampler(threading.Thread):
    """Reads /proc off the event loop: everything at the start and the end, the database's backends in between."""

    def __init__(self, meter: CpuMeter, with_server: bool) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.meter = meter
        self.with_server = with_server
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.parent: dict[int, int] = {}  # every pid seen -> its parent
        self.ours: dict[int, bool] = {}  # postmaster children told apart: works for the database or not
        self.first: dict[int, float] = {}  # postmaster children: CPU at the start (0 for those born since)
        self.last: dict[int, float] = {}  # our backends: CPU at the latest sample
        self.trees_before: dict[str, float | None] = {}
        self.trees_after: dict[str, float | None] = {}
        self.own_ms = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.trees_before = self.poll(initial=True)
            self.ready.set()
            while not self.stop.wait(self.meter.interval):
                self.poll(initial=False)
            self.trees_after = self.poll(initial=False, final=True)
        except BaseException as exc:  # reported by measure(), never lost in the thread
            self.error = exc
            self.ready.set()
        finally:
            self.own_ms = time.thread_time() * 1000

    def poll(self, *, initial: bool, final: bool = False) -> dict[str, float | None]:
        meter = self.meter
        everything = initial or final
        stats = read_all(meter.proc) if everything else {}
        postmaster = meter.postmaster_pid
        for pid in stats if everything else list_pids(meter.proc):
            if pid not in self.parent:
                stat = stats.get(pid) or read_stat(pid, meter.proc)
                if stat is None:
                    continue
                self.parent[pid] = stat.ppid
                if stat.ppid == postmaster:
                    self.first[pid] = (runtime_ms(pid, meter.proc) or 0.0) if initial else 0.0
            if postmaster is None or meter.database is None or self.parent[pid] != postmaster:
                continue
            if pid not in self.ours:
                verdict = serves_database(
                    title(pid, meter.proc), meter.database, {p for p, o in self.ours.items() if o}
                )
                if verdict is None:
                    continue  # still starting: look again at the next sample
                self.ours[pid] = verdict
            if self.ours[pid]:
                spent = runtime_ms(pid, meter.proc)
                if spent is not None:  # None: it has exited since, and keeps its last sample
                    self.last[pid] = spent
        if not everything:
            return {}
        return {
            "server": tree_cpu_ms(meter.server_pid, stats, meter.proc)
            if self.with_server and meter.server_pid
            else None,
            "pg_server": tree_cpu_ms(postmaster, stats, meter.proc) if postmaster else None,
        }

    def pg_ms(self) -> float | None:
        if self.meter.postmaster_pid is None or self.meter.database is None:
            return None
        return sum(
            self.last[pid] - self.first.get(pid, 0.0) for pid, ours in self.ours.items() if ours and pid in self.last
        )


class CpuMeter:
    def __init__(
        self,
        *,
        server_pid: int | None = None,
        postmaster_pid: int | None = None,
        database: str | None = None,
        interval: float = 0.2,
        proc: Path = PROC,
    ) -> None:
        self.server_pid = server_pid
        self.postmaster_pid = postmaster_pid
        self.database = database
        self.interval = interval
        self.proc = proc
        self.available = proc.is_dir()

    @contextlib.contextmanager
    def measure(self, *, server: bool = True) -> Iterator[Reading]:
        """CPU used by the code in the block; `server=False` for what runs without the API (the floor)."""
        reading = Reading()
        client_before = time.process_time()
        sampler = _Sampler(self, server) if self.available else None
        if sampler is not None:
            sampler.start()
            sampler.ready.wait()
        try:
            yield reading
        finally:
            if sampler is not None:
                sampler.stop.set()
                sampler.join()
            client_ms = (time.process_time() - client_before) * 1000
            if sampler is None:
                reading.use = CpuUse(client_ms)
            elif sampler.error is not None:
                raise RuntimeError("reading CPU times from /proc failed") from sampler.error
            else:
                reading.use = CpuUse(
                    client_ms=max(0.0, client_ms - sampler.own_ms),
                    server_ms=_delta(sampler.trees_before.get("server"), sampler.trees_after.get("server")),
                    pg_ms=sampler.pg_ms(),
                    pg_server_ms=_delta(sampler.trees_before.get("pg_server"), sampler.trees_after.get("pg_server")),
                )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else max(0.0, after - before)
