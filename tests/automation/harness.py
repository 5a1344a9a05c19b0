"""Real workers for the automation tests: `python3 -m app.cli worker` subprocesses on the test database and Redis,
and a local HTTP server that records the webhooks it receives."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import redis

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The workers' stderr, for when a test fails.
LOG_PATH = Path(os.environ.get("STAGEFLOW_WORKER_LOG", str(ROOT / ".stageflow" / "test-workers.log")))


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        REDIS_URL=settings.REDIS_URL or "",
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        # Short, for quick takeovers; jobs are cut at 3 s and webhook requests at 1.5 s (see Settings).
        AUTOMATION_LEASE_SECONDS="4",
        AUTOMATION_SWEEP_AFTER_SECONDS="2",
        WEBHOOK_TIMEOUT_SECONDS="3",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def start_worker(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=worker_env(settings, **extra),
        stdout=LOG_PATH.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def forget_earlier_events(settings: Settings) -> None:
    """Earlier tests of the session left events nobody has rules for; a new worker would otherwise chew through
    all of them (outbox backlog and queued jobs) before reaching this test's events. Backdate them out of the
    dispatcher's and the sweep's reach and drop the queued jobs."""

    async def backdate() -> None:
        connection = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(
                "UPDATE outbox_events SET dispatched_at = now() - interval '1 day'"
                " WHERE dispatched_at IS NULL OR dispatched_at > now() - interval '1 day'"
            )
        finally:
            await connection.close()

    # A thread of its own: the caller may be inside a running event loop.
    thread = threading.Thread(target=asyncio.run, args=(backdate(),))
    thread.start()
    thread.join()
    client = redis.Redis.from_url(settings.REDIS_URL or "")
    try:
        keys = [*client.scan_iter("arq:*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def running_worker(settings: Settings, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    forget_earlier_events(settings)
    process = start_worker(settings, **extra)
    try:
        yield process
    finally:
        stop_worker(process)


async def wait_for(check: Callable[[], Awaitable[Any]], *, seconds: float = 15, interval: float = 0.1) -> Any:
    """Poll until `check` returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s (last: {result!r})")
        await asyncio.sleep(interval)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HookServer:
    port: int
    received: list[Received] = field(default_factory=list)
    status: int = 200

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def hook_server() -> Iterator[HookServer]:
    state = HookServer(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
