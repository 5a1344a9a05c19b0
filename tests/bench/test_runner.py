"""The benchmark runner keeps working: a whole run at a tiny N (the benchmark itself is not part of the tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "bulk load (batch endpoint)",
    "single create",
    "get by id",
    "patch two values",
    "stage move",
    "filtered list",
    "filtered + date, pages 1-5",
    "board (one pipeline)",
    "title substring search",
    "graphql filtered list",
    "filtered list (own scope)",
    "board (one pipeline) (own scope)",
}


def _admin_url(database_url: str) -> str:
    base = database_url.replace("postgresql+asyncpg://", "postgresql://").partition("?")[0]
    return base.rsplit("/", 1)[0] + "/postgres"


@pytest.mark.slow
def test_a_tiny_run_measures_every_scenario(embedded: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable,
        "-m",
        "bench",
        "--n",
        "200",
        "--requests",
        "20",
        "--concurrency",
        "4",
        "--workers",
        "1",
        "--batch-size",
        "100",
        "--growth",
        "--growth-requests",
        "5",
        "--quiet",
        "--admin-url",
        _admin_url(embedded["database"]),
        "--out",
        str(out),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    by_name = {s["name"]: s for s in report["scenarios"]}
    assert set(by_name) == SCENARIOS
    for name, scenario in by_name.items():
        assert scenario["errors"] == 0, (name, scenario["first_error"])
        if not (scenario["note"] or "").startswith("skipped"):
            assert scenario["count"] > 0, name
            assert 0 < scenario["p50_ms"] <= scenario["p95_ms"] <= scenario["p99_ms"], name
    assert by_name["bulk load (batch endpoint)"]["count"] == 200
    assert {f["name"] for f in report["floor"]} == {"floor: filtered list", "floor: get by id"}
    assert report["floor_ratio_p50"]["filtered list"] > 0
    # Permission filtering: the same list and board for a person who may read their own leads only.
    assert set(report["permission_cost_p50"]) == {"filtered list", "board (one pipeline)"}
    assert all(ratio > 0 for ratio in report["permission_cost_p50"].values())
    assert "own scope over admin" in run.stdout
    assert [g["n"] for g in report["growth"]] == [200]
    assert "p50 over the floor" in run.stdout
    # CPU per operation beside latency: the client, the API server's process tree and the database's backends.
    for name in ("get by id", "filtered list", "stage move", "bulk load (batch endpoint)"):
        scenario = by_name[name]
        assert scenario["client_cpu_ms_per_op"] > 0, name
        assert scenario["server_cpu_ms_per_op"] > 0, name
        assert scenario["pg_cpu_ms_per_op"] > 0, name
        assert scenario["pg_server_cpu_ms_per_op"] >= scenario["pg_cpu_ms_per_op"] * 0.9, name
    for plain in report["floor"]:  # no HTTP server in the floor
        assert plain["server_cpu_ms_per_op"] is None
        assert plain["pg_cpu_ms_per_op"] > 0
    assert report["floor_ratio_pg_cpu"]["filtered list"] > 0
    assert report["growth"][0]["filtered_server_cpu_ms_per_op"] > 0
    assert report["server"] == {"http": "uvicorn", "workers": 1}
    assert "server CPU ms/op" in run.stdout
