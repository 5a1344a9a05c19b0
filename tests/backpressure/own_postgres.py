"""A PostgreSQL server of the test's own (its own port and data directory) that the test may stop and start.

The binaries come from the `pgserver` wheel the embedded mode uses, or from the system's /usr/lib/postgresql. As
root, the server runs as the `postgres` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.kit.net import free_port

SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off "
    "-c max_connections=50 -c shared_buffers=16MB"
)


def binaries() -> Path | None:
    """The wheel's binaries, or the system's; as root the system's first (the `postgres` user cannot reach a
    wheel installed under /root)."""
    # Found, not imported: importing pgserver sets up its runtime directory.
    spec = importlib.util.find_spec("pgserver")
    wheel = [Path(spec.origin).parent / "pginstall" / "bin"] if spec is not None and spec.origin else []
    system = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    candidates = system + wheel if os.geteuid() == 0 else wheel + system
    return next((c for c in candidates if (c / "pg_ctl").exists() and (c / "initdb").exists()), None)


@dataclass
class OwnPostgres:
    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} {SERVER_OPTIONS}"
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-o", options,
            "-l", str(self.data_dir / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-m", "fast", "-w", "stop")

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""


def create(bin_dir: Path) -> OwnPostgres:
    """initdb in a new directory (trust auth, user postgres); not started."""
    data_dir = Path(tempfile.mkdtemp(prefix="stageflow-own-pg-"))
    os.chmod(data_dir, 0o755)  # noqa: S103 (the server's user must reach it; it holds test data only)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    server = OwnPostgres(bin_dir, data_dir, free_port())
    server._run(
        str(bin_dir / "initdb"), "-D", str(data_dir / "pgdata"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--no-sync", "--no-instructions",
    )  # fmt: skip
    return server


def remove(server: OwnPostgres) -> None:
    shutil.rmtree(server.data_dir, ignore_errors=True)
