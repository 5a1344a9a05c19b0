"""The benchmark's CPU accounting (bench.cpu) against the kernel's own numbers, on real processes and backends."""

import os
import subprocess
import sys
import time

import asyncpg
import pytest

from bench.cpu import CpuMeter, CpuUse, descendants, per_op, postmaster_of, read_all, read_stat, serves_database
from bench.report import markdown
from bench.runner import wait_until_settled

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")

BURN = "import time\nwhile time.process_time() < {seconds}: pass\n"


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_read_stat_of_this_process_follows_its_cpu_time() -> None:
    before, clock_before = read_stat(os.getpid()), time.process_time()
    _burn(0.3)
    after, clock_after = read_stat(os.getpid()), time.process_time()
    assert before is not None
    assert after is not None
    assert after.ppid == os.getppid()
    assert after.threads >= 1
    spent = after.cpu_ms - before.cpu_ms
    # /proc counts in clock ticks (10 ms): the two readings agree to a couple of ticks.
    assert abs(spent - (clock_after - clock_before) * 1000) <= 30
    assert spent >= 270
    assert read_stat(2**22 + 1) is None  # above any pid_max: gone processes read as None


def test_the_client_share_is_this_process_without_the_sampler() -> None:
    meter = CpuMeter(interval=0.01)  # a busy sampler: its own time must not show as the client's
    with meter.measure(server=False) as reading:
        _burn(0.3)
    assert reading.use is not None
    assert 290 <= reading.use.client_ms <= 380
    assert reading.use.server_ms is None
    assert reading.use.pg_ms is None


def test_the_server_share_counts_its_whole_tree_even_a_child_that_exited() -> None:
    # A "server" that, when told, runs a child burning 0.4 s of CPU, waits for it to exit, and idles.
    script = (
        "import subprocess, sys, time\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        f"subprocess.run([sys.executable, '-c', {BURN.format(seconds=0.4)!r}], check=True)\n"
        "print('done', flush=True)\n"
        "time.sleep(30)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdin is not None
        assert server.stdout.readline().strip() == "ready"
        meter = CpuMeter(server_pid=server.pid)
        with meter.measure() as reading:
            server.stdin.write("go\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "done"
        assert reading.use is not None
        assert reading.use.server_ms is not None
        # 400 ms burnt by the exited child, plus its interpreter's start-up; the idle parent adds next to nothing.
        assert 390 <= reading.use.server_ms <= 900
        assert reading.use.client_ms < 150
        with meter.measure(server=False) as floor:
            pass
        assert floor.use is not None
        assert floor.use.server_ms is None
    finally:
        server.kill()
        server.wait()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _other_database(url: str) -> str:
    base, _, query = _plain(url).partition("?")
    return base.rsplit("/", 1)[0] + "/postgres" + (f"?{query}" if query else "")


HEAVY = "SELECT sum(i) FROM generate_series(1, 3000000) AS i"


async def _cpu_of(connection: asyncpg.Connection) -> float:
    stat = read_stat(await connection.fetchval("SELECT pg_backend_pid()"))
    assert stat is not None
    return stat.cpu_ms


async def test_the_postgresql_share_is_the_backends_of_the_benchmark_database(database_url: str) -> None:
    url = _plain(database_url)
    database = url.partition("?")[0].rsplit("/", 1)[1]
    old = await asyncpg.connect(url)  # open before the measurement: only what it spends during it counts
    other = await asyncpg.connect(_other_database(url))  # another database on the same server: not ours
    try:
        postmaster = postmaster_of(await old.fetchval("SELECT pg_backend_pid()"))
        if postmaster is None:
            pytest.skip("PostgreSQL does not run on this machine")
        await old.fetchval(HEAVY)
        meter = CpuMeter(postmaster_pid=postmaster, database=database, interval=0.05)
        with meter.measure(server=False) as reading:
            old_before = await _cpu_of(old)
            await old.fetchval(HEAVY)
            old_spent = await _cpu_of(old) - old_before
            new = await asyncpg.connect(url)  # born during the measurement and closed before its end
            try:
                await new.fetchval(HEAVY)
                new_spent = await _cpu_of(new)
                await new.execute("SELECT pg_sleep(0.3)")  # idle long enough for a sample after its work
            finally:
                await new.close()
            other_before = await _cpu_of(other)
            await other.fetchval(HEAVY)
            other_spent = await _cpu_of(other) - other_before
        use = reading.use
        assert use is not None
        assert use.pg_ms is not None
        assert use.pg_server_ms is not None
        assert min(old_spent, new_spent, other_spent) >= 50  # the queries did burn CPU
        # Ours are the two connections to the benchmark database; the other database's backend is left out.
        assert old_spent + new_spent - 40 <= use.pg_ms <= old_spent + new_spent + 60
        # The whole server (exact, shared with whatever else runs on it) holds all three.
        assert use.pg_server_ms >= use.pg_ms + other_spent - 40
    finally:
        await old.close()
        await other.close()


@pytest.mark.parametrize(
    ("process_title", "verdict"),
    [
        ("postgres: 15/main: postgres bench_db 127.0.0.1(5000) idle", True),
        ("postgres: postgres bench_db [local] SELECT", True),
        ("postgres: 15/main: parallel worker for PID 41", True),
        ("postgres: 15/main: parallel worker for PID 42", False),
        ("postgres: 15/main: postgres other_db 127.0.0.1(5001) idle", False),
        ("postgres: 15/main: postgres bench_db_2 127.0.0.1(5002) idle", False),
        ("postgres: 15/main: checkpointer", False),
        ("postgres: 15/main: autovacuum worker other_db", False),
        ("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", None),
        (None, False),
    ],
)
def test_postgresql_processes_are_told_apart_by_their_title(process_title: str | None, verdict: bool | None) -> None:
    assert serves_database(process_title, "bench_db", ours={41}) is verdict


def test_cpu_per_operation_and_sums() -> None:
    total = CpuUse(100.0, 400.0, None, 50.0) + CpuUse(20.0, None, None, 10.0)
    assert total == CpuUse(120.0, 400.0, None, 60.0)
    fields = per_op(total, 40)
    assert fields["client_cpu_ms_per_op"] == 3.0
    assert fields["server_cpu_ms_per_op"] == 10.0
    assert fields["pg_cpu_ms_per_op"] is None
    assert fields["pg_server_cpu_ms_per_op"] == 1.5
    assert fields["cpu_ms"] == {"client": 120.0, "server": 400.0, "pg": None, "pg_server": 60.0}
    assert per_op(total, 0)["client_cpu_ms_per_op"] is None
    assert per_op(None, 10)["server_cpu_ms_per_op"] is None


def test_the_markdown_report_shows_cpu_beside_latency() -> None:
    row = {"name": "get by id", "count": 10, "errors": 0, "throughput_per_s": 5.0, "note": None}
    row |= {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, **per_op(CpuUse(10.0, 20.0, 30.0, 40.0), 10)}
    floor = {**row, "name": "floor: get by id", **per_op(CpuUse(5.0, None, 6.0, 7.0), 10)}
    report = {
        "postgresql": "PostgreSQL 15",
        "machine": {"cpus": 2, "packages": {}},
        "server": {"http": "uvicorn", "workers": 2},
        "uptime_before": "load 0",
        "uptime_after": "load 1",
        "n": 10,
        "scenarios": [row],
        "floor": [floor],
        "floor_ratio_p50": {"get by id": 1.0},
        "floor_ratio_pg_cpu": {"get by id": 5.0},
        "growth": [],
    }
    text = markdown(report)
    assert "| client CPU ms/op | server CPU ms/op | PG CPU ms/op |" in text
    assert "| get by id | 10 | 0 | 5.0 | 1.00 | 2.00 | 3.00 | 1.00 | 2.00 | 3.00 |" in text
    assert "| floor: get by id | 10 | 0 | 5.0 | 1.00 | 2.00 | 3.00 | 0.50 | — | 0.60 |" in text
    assert "PostgreSQL CPU over the floor's: get by id **5.0×**" in text


def test_the_runner_waits_for_every_worker_to_settle() -> None:
    # A "server" whose second worker is still busy starting (burning 0.8 s of CPU) when the first answers.
    script = (
        "import subprocess, sys, time\n"
        "idle = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"busy = subprocess.Popen([sys.executable, '-c', {(BURN.format(seconds=0.8) + 'time.sleep(60)')!r}])\n"
        "time.sleep(60)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script])
    try:
        started = time.process_time()
        wall = time.monotonic()
        wait_until_settled(server.pid, 2, timeout=30)
        assert time.monotonic() - wall >= 0.8  # not before the busy worker has done its start-up
        assert time.process_time() - started < 0.5  # and without burning the client's CPU meanwhile
        stats = read_all()
        busy = [pid for pid in descendants(server.pid, stats) if stats[pid].cpu_ms >= 700]
        assert busy, "the busy worker had finished its start-up"
    finally:
        for child in descendants(server.pid, read_all()):
            os.kill(child, 9)
        server.kill()
        server.wait()
