"""`stageflow serve` under each HTTP server it offers, with two worker processes as in production: the app's lifespan
runs in each worker (readyz reaches the database and Redis through what it set up), responses carry the request id,
and the workers write the app's JSON access log (spawned workers do not inherit the parent's logging)."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli import HttpServer
from app.kit import reuseport
from app.kit.net import free_port, wait_until_healthy


@pytest.mark.slow
@pytest.mark.parametrize("server", [s.value for s in HttpServer])
def test_serve_with_two_workers(server: str, database_url: str, embedded: dict[str, str], tmp_path: Path) -> None:
    if server == HttpServer.GRANIAN:
        pytest.importorskip("granian", reason="the optional granian extra is not installed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": embedded["redis"],
        "LOG_LEVEL": "INFO",
        "JWT_SECRET": secrets.token_urlsafe(48),  # production settings: the server refuses to start without one
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2", "--server", server]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(base, process, timeout=90)
            ready = httpx.get(f"{base}/readyz", headers={"X-Request-ID": "serve-check-0"}, timeout=10)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"] == "ok"
            assert ready.json()["checks"]["redis"] == "ok"
            assert ready.headers["x-request-id"] == "serve-check-0"
            with httpx.Client(base_url=base, timeout=10) as client:
                for number in range(1, 11):
                    response = client.get("/api/v1/entity-types", headers={"X-Request-ID": f"serve-check-{number}"})
                    assert response.status_code == 401  # no key: a problem answer from a worker, with its id
                    assert response.headers["x-request-id"] == f"serve-check-{number}"
        finally:
            process.terminate()
            code = process.wait(timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = {e["request_id"]: e for e in entries if e["logger"] == "stageflow.access" and "request_id" in e}
    assert {f"serve-check-{number}" for number in range(11)} <= set(access), log_path.read_text()[-3000:]
    assert access["serve-check-0"]["route"] == "/readyz"
    assert access["serve-check-5"]["status"] == 401


def _spawned_workers(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


@pytest.mark.slow
@pytest.mark.skipif(not reuseport.available(), reason="SO_REUSEPORT balancing is Linux's")
def test_uvicorn_workers_share_the_port_and_a_dead_one_is_replaced(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "DATABASE_URL": database_url, "JWT_SECRET": secrets.token_urlsafe(48)}
    environment.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(base, process, timeout=90)
            deadline = time.monotonic() + 60
            while len(workers := _spawned_workers(process.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(workers) == 2, log_path.read_text()[-3000:]
            # A second server on the same port is refused, as a plain bind would be, rather than sharing it.
            with pytest.raises(OSError, match="in use"):
                reuseport.ensure_port_free("127.0.0.1", port)
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            while (len(replaced := _spawned_workers(process.pid)) < 2 or victim in replaced) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)
            assert victim not in replaced, log_path.read_text()[-3000:]
            assert len(replaced) == 2, log_path.read_text()[-3000:]
            wait_until_healthy(base, process, timeout=60)
            with httpx.Client(base_url=base, timeout=10) as client:
                assert all(client.get("/healthz").status_code == 200 for _ in range(20))
        finally:
            process.terminate()
            code = process.wait(timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    assert f"worker {victim} exited" in log_path.read_text()
