"""The analytics benchmark keeps working: a whole run at a tiny N (the benchmark itself is not part of the tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _admin_url(database_url: str) -> str:
    base = database_url.replace("postgresql+asyncpg://", "postgresql://").partition("?")[0]
    return base.rsplit("/", 1)[0] + "/postgres"


@pytest.mark.slow
def test_a_tiny_run_times_every_report_and_the_write_path(embedded: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "analytics.json"
    command = [sys.executable, "-m", "bench.analytics", "--n", "300", "--requests", "1", "--moves", "200"]
    command += ["--admin-url", _admin_url(embedded["database"]), "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["load"]["elements"] == 300
    assert report["load"]["history"] > 300
    assert report["load"]["stage_days"] > 0
    assert len(report["scenarios"]) == 12
    assert all(s["p50_ms"] > 0 for s in report["scenarios"])
    assert report["write_path"]["on"]["count"] == 100
