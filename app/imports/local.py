"""Importing a local CSV file (the CLI's `import` command): same job and batches as the REST import, run in the
foreground with a progress callback, and every rejected row written to a file."""

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.auth.actor import system_actor
from app.db import make_engine, make_sessionmaker, unit_of_work
from app.errors import NotFound
from app.imports import service
from app.imports.schemas import ImportRead
from app.settings import Settings
from app.workspaces import service as workspace_service


@dataclass
class LocalImport:
    csv_path: Path
    entity_type: str
    mapping: dict[str, str]
    create_fields: bool
    rejected_path: Path
    workspace_id: uuid.UUID | None = None
    batch_size: int = service.DEFAULT_BATCH
    resume: uuid.UUID | None = None


async def run(settings: Settings, job: LocalImport, progress: service.Progress) -> tuple[ImportRead, int]:
    """Returns the finished job and the total row count; rejected rows go to `job.rejected_path`."""
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with unit_of_work(sessionmaker) as session:
            workspace_id = job.workspace_id
            if workspace_id is None:
                first = await workspace_service.first_workspace(session)
                if first is None:
                    raise NotFound("No workspace: create one with `stageflow workspace create`")
                workspace_id = first.id
            actor = system_actor(workspace_id)
            if job.resume is not None:
                existing = await service.load_job(session, actor, job.resume)
                job_id, total = existing.id, existing.total_rows
            else:
                created = await service.create_job(
                    session,
                    actor,
                    job.entity_type,
                    filename=job.csv_path.name,
                    text=job.csv_path.read_text(encoding="utf-8-sig"),
                    mapping=job.mapping,
                    create_fields=job.create_fields,
                    batch_size=job.batch_size,
                )
                job_id, total = created.id, created.total_rows
        mode = "a" if job.resume is not None and job.rejected_path.exists() else "w"
        with job.rejected_path.open(mode, newline="", encoding="utf-8") as out:
            writer: csv.DictWriter[str] | None = None

            def reject(line: int, row: dict[str, str], reasons: list[str]) -> None:
                nonlocal writer
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=["line", "reason", *row])
                    if out.tell() == 0:
                        writer.writeheader()
                writer.writerow({"line": line, "reason": "; ".join(reasons), **row})

            await service.run_job(sessionmaker, actor, job_id, progress=progress, on_reject=reject)
        if job.rejected_path.stat().st_size == 0:
            job.rejected_path.unlink()
        async with sessionmaker() as session:
            return await service.load_job(session, actor, job_id), total
    finally:
        await engine.dispose()
