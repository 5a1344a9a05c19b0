"""The API contract under generated input: schemathesis drives every operation of the running service.

It runs against a real `stageflow serve` process with a workspace seeded so that generated requests reach real
resources (a type, its fields, a pipeline, stages, elements, a relation), and fails on any 5xx, any response that
breaks the documented schema, status code or content type. The number of examples per operation is bounded
(SCHEMATHESIS_MAX_EXAMPLES, default 10) to keep CI fast; raise it locally for a deeper run.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import Tenant
from tests.live import live_server

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def _schemathesis() -> str:
    beside_python = Path(sys.executable).parent / "schemathesis"
    found = str(beside_python) if beside_python.exists() else shutil.which("schemathesis")
    if not found:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


def _seed(base_url: str, key: str) -> dict[str, str]:
    """Resources for path parameters, so generated requests hit existing rows, not only 404s."""
    with httpx.Client(base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {key}"}) as http:

        def post(path: str, body: dict[str, object]) -> dict[str, str]:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            created: dict[str, str] = response.json()
            return created

        post("/entity-types", {"code": "lead", "title": "Lead", "settings": {"recycle_bin_enabled": True}})
        post("/entity-types", {"code": "company", "title": "Company", "preset": "list"})
        post("/entity-types/lead/fields", {"code": "budget", "type": "decimal", "min": 0})
        post("/entity-types/lead/fields", {"code": "industry", "type": "enum", "options": [{"value": "it"}]})
        relation = post("/relations", {"parent_type": "company", "child_type": "lead"})
        lead = post("/entity-types/lead/elements", {"title": "ACME", "values": {"budget": 10, "industry": "it"}})
        company = post("/entity-types/company/elements", {"title": "ACME Inc"})
        post(f"/elements/{company['id']}/links", {"child_id": lead["id"]})
        api_key = post("/api-keys", {"name": "spare", "role": "viewer"})
        activity = post("/activities", {"kind": "call", "status": "planned", "element_ids": [lead["id"]]})
        file = http.post("/files", files={"file": ("seed.txt", b"seed", "text/plain")})
        assert file.status_code == 201, file.text
    return {
        "type": "lead",
        "code": "budget",
        "element_id": lead["id"],
        "child_id": lead["id"],
        "pipeline_id": lead["pipeline_id"],
        "stage_id": lead["stage_id"],
        "relation_id": relation["id"],
        "key_id": api_key["id"],
        "activity_id": activity["id"],
        "file_id": file.json()["id"],
    }


def _config(parameters: dict[str, str]) -> str:
    lines = ["[parameters]"] + [f'"path.{name}" = "{value}"' for name, value in parameters.items()]
    return "\n".join(lines) + "\n"


async def test_no_5xx_and_no_schema_violation(
    tenant: Tenant, database_url: str, embedded: dict[str, str], tmp_path: Path
) -> None:
    result = await asyncio.to_thread(_run_schemathesis, tenant.admin_key, database_url, embedded["redis"], tmp_path)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def _run_schemathesis(
    key: str, database_url: str, redis_url: str, tmp_path: Path
) -> "subprocess.CompletedProcess[str]":
    with live_server(database_url, redis_url, tmp_path / "server.log") as base_url:
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config(_seed(base_url, key)))
        command = [
            _schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--max-examples",
            os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"),
            "--seed",
            "47",
            "--exclude-path",
            "/metrics",
            "--no-color",
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)
