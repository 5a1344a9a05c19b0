import csv
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from app.auth.actor import system_actor
from app.cli import cli
from app.imports import service as import_service
from app.imports.local import LocalImport, run
from app.imports.models import ImportJob
from app.kit import background
from app.settings import Settings, get_settings
from tests.conftest import Tenant
from tests.factories import lead_type

CSV = """Title,Budget,Industry,Company Size,Email,Channel
ACME,1500.50,it,10,a@acme.io,web
Bolt,20,bank,,b@bolt.io,web
Farmers,10,farm,5,,fair
Minus,-5,retail,3,,web
Mail,100,it,7,not-an-email,web
Empty,,,,,
"""


async def _wait(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    await background.drain()
    response = await client.get(f"/entity-types/lead/imports/{job['id']}")
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestRestImport:
    async def test_imports_valid_rows_and_reports_rejected_ones(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.post(
            "/entity-types/lead/import",
            files={"file": ("leads.csv", CSV.encode(), "text/csv")},
            data={"mapping": '{"Title": "title"}', "create_fields": "true"},
        )
        assert response.status_code == 202, response.text
        assert (response.json()["status"], response.json()["total_rows"]) == ("pending", 6)
        job = await _wait(client, response.json())
        assert job["status"] == "done", job["error"]
        assert (job["imported"], job["rejected"], job["processed_rows"], job["progress"]) == (4, 2, 6, 1.0)
        reasons = {r["line"]: r["reasons"] for r in job["rejections"]}
        assert set(reasons) == {5, 6}
        assert "at least 0" in reasons[5][0]
        assert "email" in reasons[6][0]
        assert job["columns"]["created_fields"] == ["channel"]
        # With create_fields, values an enum does not know yet become options.
        assert job["columns"]["new_options"] == {"industry": ["farm"]}
        assert job["columns"]["targets"]["Company Size"] == "company_size"
        field = (await client.get("/entity-types/lead/fields/channel")).json()
        assert (field["type"], [o["value"] for o in field["options"]]) == ("enum", ["fair", "web"])
        listed = (await client.get("/entity-types/lead/elements", params={"sort": "title"})).json()["items"]
        assert [e["title"] for e in listed] == ["ACME", "Bolt", "Empty", "Farmers"]
        assert listed[0]["values"] == {
            "budget": 1500.5,
            "industry": "it",
            "company_size": 10,
            "email": "a@acme.io",
            "channel": "web",
        }

    async def test_bad_files_are_refused(self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient) -> None:
        await lead_type(client)
        empty = await client.post("/entity-types/lead/import", files={"file": ("e.csv", b"", "text/csv")})
        assert empty.status_code == 422
        bad_map = await client.post(
            "/entity-types/lead/import",
            files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")},
            data={"mapping": '{"nope": "title"}'},
        )
        assert bad_map.status_code == 422
        assert bad_map.json()["errors"][0]["field"] == "map.nope"
        binary = await client.post("/entity-types/lead/import", files={"file": ("x.csv", b"\xff\xfe\x00", "text/csv")})
        assert binary.status_code == 422
        viewer = await viewer_client.post("/entity-types/lead/import", files={"file": ("x.csv", b"a\n1\n", "text/csv")})
        assert viewer.status_code == 403


class TestLocalImport:
    async def test_rejected_rows_file_and_resume(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings, tmp_path: Path
    ) -> None:
        await lead_type(client)
        path = tmp_path / "leads.csv"
        path.write_text(CSV)
        job = LocalImport(
            csv_path=path,
            entity_type="lead",
            mapping={"Title": "title", "Channel": "-"},
            create_fields=False,
            rejected_path=tmp_path / "rejected.csv",
            workspace_id=tenant.workspace_id,
            batch_size=2,
        )
        calls: list[int] = []

        def crash_after_first_batch(rows: int) -> None:
            calls.append(rows)
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            await run(settings, job, crash_after_first_batch)
        jobs = (await client.get("/entity-types/lead/elements")).json()["items"]
        assert len(jobs) == 2  # the first batch committed

        job_id = await _latest_job(app, tenant)
        job.resume = job_id
        result, total = await run(settings, job, lambda rows: calls.append(rows))
        assert (result.status, result.imported, result.rejected, total) == ("done", 3, 3, 6)
        assert calls == [2, 2, 2, 2]  # the crashed batch, then resume: 2 already done, then two more batches
        assert result.columns["ignored"] == ["Channel"]
        titles = sorted(e["title"] for e in (await client.get("/entity-types/lead/elements")).json()["items"])
        assert titles == ["ACME", "Bolt", "Empty"]
        with (tmp_path / "rejected.csv").open() as handle:
            rejected = list(csv.DictReader(handle))
        assert [(r["line"], r["Title"]) for r in rejected] == [("4", "Farmers"), ("5", "Minus"), ("6", "Mail")]
        assert "email" in rejected[2]["reason"]


async def _latest_job(app: FastAPI, tenant: Tenant) -> Any:
    async with app.state.sessionmaker() as session:
        return await session.scalar(
            select(ImportJob.id)
            .where(ImportJob.workspace_id == tenant.workspace_id)
            .order_by(ImportJob.created_at.desc())
            .limit(1)
        )


def test_type_inference() -> None:
    assert import_service.infer_type(["Yes", "No", ""]) == ("boolean", [])
    assert import_service.infer_type(["0", "1", "1"]) == ("integer", [])
    assert import_service.infer_type(["1.5", "2"]) == ("decimal", [])
    assert import_service.infer_type(["2024-01-02"]) == ("date", [])
    assert import_service.infer_type(["a", "b", "a", "b"]) == ("enum", ["a", "b"])
    assert import_service.infer_type(["x1", "x2", "x3"]) == ("string", [])
    assert import_service.slug("What is your current occupation?") == "what_is_your_current_occupation"
    assert import_service.slug("1st touch") == "f_1st_touch"


async def test_an_interrupted_import_resumes_over_rest(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
    await lead_type(client)
    async with app.state.sessionmaker() as session:
        # A job whose process stopped before it ran: stored with its CSV, never started.
        job = await import_service.create_job(
            session, system_actor(tenant.workspace_id), "lead", filename="x.csv", text=CSV, mapping={"Title": "title"}
        )
        await session.commit()
    resumed = await client.post(f"/entity-types/lead/imports/{job.id}/resume")
    assert resumed.status_code == 202, resumed.text
    done = await _wait(client, resumed.json())
    assert (done["status"], done["imported"], done["rejected"]) == ("done", 3, 3)
    again = await client.post(f"/entity-types/lead/imports/{job.id}/resume")
    assert again.status_code == 409


def test_cli_import(tenant: Tenant, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    path = tmp_path / "deals.csv"
    path.write_text("Name,Value,Won\nA,10,yes\nB,x,no\nC,30,no\n")
    args = ["import", str(path), "--type", "deal", "--create-fields", "--map", "Name=title"]
    try:
        result = CliRunner().invoke(cli, [*args, "--workspace", str(tenant.workspace_id)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "3 imported, 0 rejected" in result.output
    assert "created fields: value, won" in result.output
    assert not (tmp_path / "deals.rejected.csv").exists()
