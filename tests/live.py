"""A real API process on a free loopback port, for tests that need HTTP from outside (contract, WebSocket)."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.kit.net import free_port, wait_until_healthy


@contextmanager
def live_server(database_url: str, redis_url: str, log_path: Path, *, timeout: float = 30, **env: str) -> Iterator[str]:
    """Run `stageflow serve` against the given services; yields its base URL and stops it afterwards. `timeout`: how
    long it may take to become healthy (imports alone take tens of seconds on a busy machine)."""
    port = free_port()
    # Production settings: the server refuses to start without a JWT_SECRET.
    secret = os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48)
    environment = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "JWT_SECRET": secret, **env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_healthy(base_url, process, timeout=timeout)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: {log_path.read_text()[-2000:]}") from exc
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
