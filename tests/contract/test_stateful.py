"""The REST surface under schemathesis's stateful mode: chains of calls that feed each answer's ids to the next.

Schemathesis infers the links between operations from the OpenAPI document (a `POST /entity-types` gives the
`{type}` of `…/fields` and `…/elements`, an element's `id` the `{element_id}` of `/elements/{element_id}/move`…) and
runs scenarios of several steps against a real `stageflow serve`, failing on any 5xx. CI runs a pass bounded in
time (SCHEMATHESIS_STATEFUL_SECONDS, default 40: a few hundred scenarios); raise it for a deeper run.
"""

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Tenant
from tests.contract.test_openapi_contract import _config, _schemathesis, _seed
from tests.live import live_server

pytestmark = pytest.mark.slow

SECONDS = os.environ.get("SCHEMATHESIS_STATEFUL_SECONDS", "40")


def _run(key: str, database_url: str, redis_url: str, tmp_path: Path) -> "subprocess.CompletedProcess[str]":
    with live_server(database_url, redis_url, tmp_path / "server.log") as base_url:
        seeded = _seed(base_url, key)  # a type with fields, elements and a relation for the chains to start from
        # Entity types are named by code, which no answer links to: the chains work on the seeded one. Every other
        # path parameter comes from the links between operations.
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config({"type": seeded["type"], "code": seeded["code"]}))
        command = [
            _schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{base_url}/openapi.json",
            "--phases",
            "stateful",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "not_a_server_error",
            "--max-time",
            SECONDS,
            "--seed",
            os.environ.get("SCHEMATHESIS_STATEFUL_SEED", "47"),
            "--exclude-path",
            "/metrics",
            "--workers",
            "1",
            "--no-color",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=int(SECONDS) * 5 + 120)
    return result


def _count(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


async def test_stateful_scenarios_get_no_5xx(
    tenant: Tenant, database_url: str, embedded: dict[str, str], tmp_path: Path
) -> None:
    result = await asyncio.to_thread(_run, tenant.admin_key, database_url, embedded["redis"], tmp_path)
    output = result.stdout
    scenarios, cases = _count(r"Scenarios:\s+(\d+)", output), _count(r"(\d+) generated", output)
    links = _count(r"API Links:\s+(\d+) covered", output)
    print(f"\nschemathesis stateful: {scenarios} scenarios, {cases} requests, {links} links covered")
    assert result.returncode == 0, output[-8000:] + result.stderr[-2000:]
    # the scenarios chained real resources (links were followed), not only lone calls
    assert scenarios > 0, output[-3000:]
    assert links > 0, output[-3000:]
    # nor did the server fail where the client could not see it (after the answer was sent)
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    unhandled = [line for line in server_log.splitlines() if '"level": "error"' in line]
    assert not unhandled, "\n".join(unhandled[:5])[:6000]
