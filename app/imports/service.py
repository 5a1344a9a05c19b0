"""CSV import into an entity type, through the element service's batch path.

Resumable, not all-or-nothing: every batch commits on its own together with the job's progress (`processed_rows`),
so an interrupted import resumes after the last committed batch. Rows the element service refuses are rejected
with their reasons and the rest of their batch is imported.
"""

import asyncio
import csv
import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.access.permissions import PermissionDenied, Scope
from app.access.visibility import configures, reads_everything
from app.auth.actor import Actor
from app.db import make_sessionmaker, unit_of_work
from app.elements import service as element_service
from app.elements.schemas import BatchItem, ElementBatch
from app.entity_types import service as entity_type_service
from app.entity_types.fields import RESERVED_CODES
from app.entity_types.meta import TypeMeta, get_type_meta, get_type_meta_by_id
from app.entity_types.schemas import CODE_PATTERN, EntityTypeCreate, FieldCreate, FieldOptionIn, FieldUpdate
from app.errors import Conflict, ErrorCollector, FieldError, Invalid, NotFound
from app.imports.models import ImportJob
from app.imports.schemas import ImportRead, RejectedRow
from app.kit import background
from app.kit.failures import describe_failure

SYSTEM_TARGETS = frozenset(
    {"title", "source", "amount", "currency", "stage_code", "assigned_to", "begin_date", "close_date"}
)
SKIP = "-"
MAX_ENUM_OPTIONS = 50
MAX_OPTIONS = 500
MAX_STORED_REJECTIONS = 1000
MAX_BYTES = 50 * 1024 * 1024
DEFAULT_BATCH = 500
INTEGER = re.compile(r"^[+-]?\d{1,15}$")
TRUE, FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}

Progress = Callable[[int], None]
RejectSink = Callable[[int, dict[str, str], list[str]], None]


@dataclass
class Parsed:
    header: list[str]
    rows: list[dict[str, str]]


def read_csv(text: str) -> Parsed:
    """Parse a whole CSV (CPU-bound: async callers run it with `asyncio.to_thread`); a malformed one is a 422."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in reader.fieldnames or []]
        if not header or not any(header):
            raise Invalid("The CSV file is empty", errors=[FieldError("file", "needs a header line")])
        if len(set(header)) != len(header):
            raise Invalid("The CSV header repeats a column", errors=[FieldError("file", "column names must be unique")])
        reader.fieldnames = header
        rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as exc:  # a cell over csv.field_size_limit(), a stray quote…
        line = reader.reader.line_num  # DictReader.line_num only moves on a row that parsed
        raise Invalid(
            f"The CSV file cannot be read at line {line}", errors=[FieldError("file", f"line {line}: {exc}")]
        ) from exc
    return Parsed(header, rows)


def _checked_csv(text: str) -> Parsed:
    if len(text.encode()) > MAX_BYTES:
        raise Invalid("The CSV file is too large", errors=[FieldError("file", f"at most {MAX_BYTES} bytes")])
    return read_csv(text)


def slug(column: str) -> str:
    code = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")[:63].rstrip("_")
    if not code or not code[0].isalpha():
        code = f"f_{code}"[:63]
    return code if len(code) >= 2 else f"{code}_"


def infer_type(values: list[str]) -> tuple[str, list[str]]:
    """The field type a column's values suggest (and the options, for an enum)."""
    present = [v for v in values if v != ""]
    if not present:
        return "string", []
    lowered = {v.lower() for v in present}
    if lowered <= TRUE | FALSE and lowered - {"0", "1"}:
        return "boolean", []
    if all(INTEGER.match(v) for v in present):
        return "integer", []
    if all(_decimal(v) is not None for v in present):
        return "decimal", []
    if all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in present):
        return "date", []
    distinct = sorted(set(present))
    if len(distinct) <= MAX_ENUM_OPTIONS and len(present) >= 2 * len(distinct) and max(map(len, distinct)) <= 100:
        return "enum", distinct
    return ("text" if max(map(len, present)) > 255 else "string"), []


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass
class Plan:
    """Where each column goes: a custom field, a system field, or nowhere."""

    targets: dict[str, str] = field(default_factory=dict)
    field_types: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    extended: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "ignored": self.ignored,
            "created_fields": self.created,
            "new_options": self.extended,
        }


def _convert(value: str, field_type: str | None) -> Any:
    """CSV text into the JSON value the element service expects; what cannot convert is passed on to be refused."""
    if field_type == "integer" and INTEGER.match(value):
        return int(value)
    if field_type in ("decimal", "money") and _decimal(value) is not None:
        return value
    if field_type == "boolean" and value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    return value


def to_element(plan: Plan, row: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for column, target in plan.targets.items():
        raw = row.get(column, "")
        if raw == "":
            continue
        if target in SYSTEM_TARGETS:
            body[target] = raw
        else:
            values[target] = _convert(raw, plan.field_types.get(target))
    if values:
        body["values"] = values
    return body


def check_mapping(header: list[str], mapping: dict[str, str]) -> None:
    errors = ErrorCollector()
    for column, target in mapping.items():
        if column not in header:
            errors.add(f"map.{column}", "no such column in the CSV header")
        elif target != SKIP and target not in SYSTEM_TARGETS and not re.fullmatch(r"[a-z][a-z0-9_]{1,62}", target):
            errors.add(f"map.{column}", f"{target!r} is not a field code")
    errors.raise_if_any("The column mapping is not valid")


async def make_plan(
    session: AsyncSession, actor: Actor, meta: TypeMeta, parsed: Parsed, mapping: dict[str, str], create: bool
) -> Plan:
    plan = Plan()
    used: set[str] = set()
    for column in parsed.header:
        target = mapping.get(column) or slug(column)
        if target == SKIP or target in used or (target in RESERVED_CODES and target not in SYSTEM_TARGETS):
            plan.ignored.append(column)
            continue
        used.add(target)
        if target in SYSTEM_TARGETS:
            plan.targets[column] = target
        elif target in meta.fields:
            plan.targets[column] = target
            plan.field_types[target] = meta.fields[target].row.type
            if create and meta.fields[target].row.type == "enum":
                await _extend_options(session, actor, meta, target, {row.get(column, "") for row in parsed.rows}, plan)
        elif create:
            field_type, options = infer_type([row.get(column, "") for row in parsed.rows])
            await entity_type_service.create_field(
                session,
                actor,
                meta.code,
                FieldCreate(
                    code=target,
                    label=column[:200],
                    type=field_type,
                    options=[FieldOptionIn(value=o) for o in options] if field_type == "enum" else None,
                ),
            )
            plan.targets[column] = target
            plan.field_types[target] = field_type
            plan.created.append(target)
        else:
            plan.ignored.append(column)
    return plan


async def _extend_options(
    session: AsyncSession, actor: Actor, meta: TypeMeta, code: str, values: set[str], plan: Plan
) -> None:
    """With `create_fields`, values an enum field does not know yet become options (up to the field's limit)."""
    existing = meta.fields[code].options
    known = {o.value for o in existing}
    new = sorted(v for v in values if v and v not in known and len(v) <= 100)
    if not new or len(known) + len(new) > MAX_OPTIONS:
        return
    options = [FieldOptionIn(value=o.value, label=o.label) for o in existing] + [FieldOptionIn(value=v) for v in new]
    await entity_type_service.update_field(session, actor, meta.code, code, FieldUpdate(options=options))
    plan.extended[code] = new


# --- jobs ------------------------------------------------------------------------------------------------------


def _read(job: ImportJob, type_code: str) -> ImportRead:
    return ImportRead(
        id=job.id,
        entity_type=type_code,
        filename=job.filename,
        status=job.status,
        total_rows=job.total_rows,
        processed_rows=job.processed_rows,
        imported=job.imported,
        rejected=job.rejected,
        progress=round(job.processed_rows / job.total_rows, 4) if job.total_rows else 1.0,
        columns=job.options.get("plan") or {},
        rejections=[RejectedRow.model_validate(r) for r in job.rejections],
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


async def _type_for_import(session: AsyncSession, actor: Actor, type_ref: str, *, create: bool) -> TypeMeta:
    """With `create_fields`, a missing entity type is created too (with the default pipeline)."""
    try:
        return await get_type_meta(session, actor.workspace_id, type_ref)
    except NotFound:
        if not create or not re.fullmatch(CODE_PATTERN, type_ref):
            raise
    await entity_type_service.create_entity_type(
        session, actor, EntityTypeCreate(code=type_ref, title=type_ref.replace("_", " ").title())
    )
    return await get_type_meta(session, actor.workspace_id, type_ref)


async def create_job(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    filename: str,
    text: str,
    mapping: dict[str, str] | None = None,
    create_fields: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> ImportJob:
    """Check the file and the mapping, and store the job with its CSV (so it can be resumed anywhere)."""
    if create_fields:
        actor.ensure_admin()
    meta = await _type_for_import(session, actor, type_ref, create=create_fields)
    if not actor.on(meta).can_read_any("import"):
        raise PermissionDenied(f"{meta.code}.import", f"Your role may not import {meta.code} elements")
    parsed = await asyncio.to_thread(_checked_csv, text)  # up to MAX_BYTES: off the event loop
    check_mapping(parsed.header, mapping or {})
    now = datetime.now(UTC)
    job = ImportJob(
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        filename=filename[:500],
        status="pending",
        options={"mapping": mapping or {}, "create_fields": create_fields, "batch_size": batch_size},
        total_rows=len(parsed.rows),
        processed_rows=0,
        imported=0,
        rejected=0,
        rejections=[],
        source=text,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    await session.flush()
    return job


async def start_job(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    filename: str,
    text: str,
    mapping: dict[str, str] | None = None,
    create_fields: bool = False,
) -> ImportRead:
    """Create the job and run it in the background once this transaction commits."""
    job = await create_job(
        session, actor, type_ref, filename=filename, text=text, mapping=mapping, create_fields=create_fields
    )
    engine = session.bind
    assert isinstance(engine, AsyncEngine)  # noqa: S101
    background.after_commit(session, partial(run_job, make_sessionmaker(engine), actor, job.id))
    meta = await get_type_meta_by_id(session, actor.workspace_id, job.entity_type_id)
    return _read(job, meta.code)


async def _job_of_type(
    session: AsyncSession, actor: Actor, type_ref: str, job_id: uuid.UUID, *, lock: bool = False
) -> tuple[ImportJob, TypeMeta]:
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    statement = select(ImportJob).where(
        ImportJob.workspace_id == actor.workspace_id, ImportJob.entity_type_id == meta.id, ImportJob.id == job_id
    )
    job = await session.scalar(statement.with_for_update() if lock else statement)
    if job is None:
        raise NotFound(f"Import {job_id} not found")
    return job, meta


async def get_job(session: AsyncSession, actor: Actor, type_ref: str, job_id: uuid.UUID) -> ImportRead:
    """An import (its rejections quote the file's rows): for who may import into the type or reads everything."""
    job, meta = await _job_of_type(session, actor, type_ref, job_id)
    if not (configures(actor) or reads_everything(actor) or actor.on(meta).grants.any_scope("import") != Scope.none):
        raise NotFound(f"Import {job_id} not found")
    return _read(job, meta.code)


# An import `running` with no progress for this long lost its process and may be resumed.
STALE_AFTER = timedelta(minutes=10)


async def resume_job(session: AsyncSession, actor: Actor, type_ref: str, job_id: uuid.UUID) -> ImportRead:
    """Carry on a failed or interrupted import after its last committed batch, in the background."""
    job, meta = await _job_of_type(session, actor, type_ref, job_id, lock=True)
    if not actor.on(meta).can_read_any("import"):
        raise PermissionDenied(f"{meta.code}.import", f"Your role may not import {meta.code} elements")
    stale = job.status == "running" and job.updated_at < datetime.now(UTC) - STALE_AFTER
    if job.status == "done" or job.source is None:
        raise Conflict("The import is finished")
    if job.status == "running" and not stale:
        raise Conflict("The import is running")
    job.status, job.error, job.updated_at = "pending", None, datetime.now(UTC)
    await session.flush()
    engine = session.bind
    assert isinstance(engine, AsyncEngine)  # noqa: S101
    background.after_commit(session, partial(run_job, make_sessionmaker(engine), actor, job.id))
    return _read(job, meta.code)


def _rejections(error: Invalid, size: int) -> dict[int, list[str]]:
    """Item index -> reasons, from the batch path's `items[i].…` field errors."""
    out: dict[int, list[str]] = {}
    for item in error.errors:
        found = re.match(r"items\[(\d+)\]\.?(.*)", item.field)
        index = int(found.group(1)) if found else -1
        if 0 <= index < size:
            where = found.group(2) if found else ""
            out.setdefault(index, []).append(f"{where}: {item.message}" if where else item.message)
    return out


async def _import_batch(
    session: AsyncSession, actor: Actor, type_code: str, bodies: list[dict[str, Any]]
) -> dict[int, list[str]]:
    """Import what is valid; return the rejected indexes with their reasons."""
    rejected: dict[int, list[str]] = {}
    pending = list(range(len(bodies)))
    while pending:
        batch = ElementBatch.model_construct(items=[BatchItem(op="create", data=bodies[i]) for i in pending])
        try:
            async with session.begin_nested():
                await element_service.batch(session, actor, type_code, batch, action="import")
            return rejected
        except Invalid as exc:
            found = _rejections(exc, len(pending))
            if not found:  # a problem not tied to a row: reject the whole batch rather than loop
                found = {i: [exc.detail] for i in range(len(pending))}
            for position, reasons in found.items():
                rejected[pending[position]] = reasons
            pending = [index for position, index in enumerate(pending) if position not in found]
    return rejected


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    actor: Actor,
    job_id: uuid.UUID,
    *,
    progress: Progress | None = None,
    on_reject: RejectSink | None = None,
) -> None:
    """Run (or resume) an import: fields first, then one committed transaction per batch."""
    try:
        async with unit_of_work(sessionmaker) as session:
            job = await session.get(ImportJob, job_id, with_for_update=True)
            if job is None or job.workspace_id != actor.workspace_id or job.source is None:
                return
            meta = await get_type_meta_by_id(session, actor.workspace_id, job.entity_type_id)
            parsed = await asyncio.to_thread(read_csv, job.source)
            plan = await make_plan(
                session, actor, meta, parsed, job.options.get("mapping") or {}, bool(job.options.get("create_fields"))
            )
            job.status = "running"
            job.options = {**job.options, "plan": plan.describe()}
            start, batch_size = job.processed_rows, int(job.options.get("batch_size") or DEFAULT_BATCH)
        if progress is not None and start:
            progress(start)
        for offset in range(start, len(parsed.rows), batch_size):
            chunk = parsed.rows[offset : offset + batch_size]
            async with unit_of_work(sessionmaker) as session:
                rejected = await _import_batch(session, actor, meta.code, [to_element(plan, row) for row in chunk])
                found = [{"line": offset + i + 2, "reasons": reasons} for i, reasons in sorted(rejected.items())]
                stored = await session.scalar(select(ImportJob.rejections).where(ImportJob.id == job_id)) or []
                await session.execute(
                    update(ImportJob)
                    .where(ImportJob.id == job_id)
                    .values(
                        processed_rows=offset + len(chunk),
                        imported=ImportJob.imported + len(chunk) - len(rejected),
                        rejected=ImportJob.rejected + len(rejected),
                        rejections=(stored + found)[:MAX_STORED_REJECTIONS],
                        updated_at=datetime.now(UTC),
                    )
                )
            if on_reject is not None:
                for i, reasons in sorted(rejected.items()):
                    on_reject(offset + i + 2, chunk[i], reasons)
            if progress is not None:
                progress(len(chunk))
        await _finish(sessionmaker, job_id, status="done", error=None)
    except Invalid as exc:
        detail = "; ".join(f"{e.field}: {e.message}" for e in exc.errors) or exc.detail
        await _finish(sessionmaker, job_id, status="failed", error=detail)
    except Exception as exc:
        await _finish(sessionmaker, job_id, status="failed", error=f"internal error: {describe_failure(exc)}")
        raise


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID, *, status: str, error: str | None
) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": now}
    if status == "done":
        values.update(finished_at=now, source=None)  # the CSV is only kept while the import can still resume
    async with unit_of_work(sessionmaker) as session:
        await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))


async def load_job(session: AsyncSession, actor: Actor, job_id: uuid.UUID) -> ImportRead:
    job = await session.scalar(
        select(ImportJob).where(ImportJob.workspace_id == actor.workspace_id, ImportJob.id == job_id)
    )
    if job is None:
        raise NotFound(f"Import {job_id} not found")
    meta = await get_type_meta_by_id(session, actor.workspace_id, job.entity_type_id)
    return _read(job, meta.code)
