"""Data quality of one entity type: fill rates, values today's field rules refuse, likely duplicates; and merging
duplicates into one element.

The report is a few SQL statements over `elements` and the type's read model (`rm_<type>`), whatever the type's
size: one aggregate for every fill rate and rule count, one statement for the examples, one per duplicate reason.
Every one carries the reader's permission scope in its WHERE clause (as lists do), and the fields their roles hide
are left out. A merge is one transaction: the survivor's update, the moved links, tasks and comments, the history
and the deletion of the merged elements commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import ARRAY, Text, bindparam, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import AccessRole
from app.access.permissions import TypeAccess
from app.access.visibility import ensure_sees_type
from app.auth.actor import Actor
from app.dataquality import duplicates
from app.dataquality.rules import PATTERN_VALUES, Rule, explain, pattern_breaks, type_rules
from app.dataquality.schemas import (
    BreakExample,
    DuplicateCount,
    DuplicateGroup,
    DuplicateReason,
    FieldFill,
    MergeRequest,
    MergeResult,
    QualityReport,
    ReportLimits,
    RuleBreak,
    TakenValue,
)
from app.db import SessionConnection, session_connection
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.elements.reads import readable
from app.elements.schemas import ElementUpdate
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import Conflict, ErrorCollector, FieldError, Invalid, NotFound, VersionMismatch
from app.outbox.service import record_event
from app.readmodel.compiler import Params, read_scope
from app.readmodel.ddl import HAS_TRIGRAMS_SQL, SQL_TYPES, quote, table_name
from app.tasks.models import Task
from app.timeline.models import TimelineEntry
from app.timeline.service import add_entry

IDS_PER_GROUP = 20
# Keys are compared among this many newest readable elements: about a second of database CPU per 100,000.
DUPLICATES_WINDOW = 300_000
REPORT_WORK_MEM = "64MB"
SIMILAR_TITLES_WINDOW = 500
SIMILAR_TITLES_THRESHOLD = 0.6

# System fields in the report: name, type, "has a value" on `e`.
SYSTEM_FILL: tuple[tuple[str, str, str], ...] = (
    ("title", "string", "btrim(e.title) <> ''"),
    ("assigned_to", "user", "e.assigned_to IS NOT NULL"),
    ("amount", "money", "e.amount IS NOT NULL"),
    ("currency", "string", "nullif(btrim(e.currency), '') IS NOT NULL"),
    ("source", "string", "nullif(btrim(e.source), '') IS NOT NULL"),
    ("begin_date", "date", "e.begin_date IS NOT NULL"),
    ("close_date", "date", "e.close_date IS NOT NULL"),
    ("score", "integer", "e.score IS NOT NULL"),
)


# --- the report ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readable:
    """The live elements of a type someone may read, as SQL over `e` (and its read-model row `r`)."""

    meta: TypeMeta
    access: TypeAccess
    workspace_id: uuid.UUID

    @property
    def source(self) -> str:
        return f"FROM elements e JOIN {table_name(self.meta.id)} r ON r.id = e.id"

    def params(self) -> Params:
        return Params([self.workspace_id, self.meta.id])

    def where(self, params: Params) -> str:
        """Needs `params` from `self.params()` ($1 and $2)."""
        scope = read_scope(self.access, self.meta, params)
        return f"e.workspace_id = $1 AND e.entity_type_id = $2 AND e.deleted_at IS NULL AND {scope}"


def _filled(field_meta: FieldMeta) -> str:
    column = f"r.{quote(field_meta.row.code)}"
    if field_meta.row.multiple:
        return f"coalesce(cardinality({column}), 0) > 0"
    if SQL_TYPES[field_meta.row.type] == "text":
        return f"nullif(btrim({column}), '') IS NOT NULL"
    return f"{column} IS NOT NULL"


def _rate(filled: int, total: int) -> float:
    return round(filled / total, 4) if total else 0.0


async def report(
    session: AsyncSession, actor: Actor, type_ref: str, *, examples: int = 5, groups: int = 20
) -> QualityReport:
    meta = await cached_type_meta(session, actor.workspace_id, type_ref)
    ensure_sees_type(actor, meta.id, meta.code, f"Entity type {type_ref!r} not found")
    view, access = readable(meta, actor)
    scope = Readable(meta, access, actor.workspace_id)
    connection = await session_connection(session)
    # The report groups and joins every readable element of the type: in memory, not in batches on disk.
    await connection.fetchval(f"SELECT set_config('work_mem', '{REPORT_WORK_MEM}', true)")
    fields = list(view.fields.values())
    rules = type_rules(view)
    total, system_filled, custom_filled, counts = await _counts(connection, scope, fields, rules)
    rules, counts = await _check_patterns(connection, scope, rules, counts)
    broken = [(rule, count) for rule, count in zip(rules, counts, strict=True) if count]
    found = await _examples(connection, scope, [rule for rule, _ in broken], examples)
    fill = [
        FieldFill(field=name, system=True, type=kind, required=False, filled=n, fill_rate=_rate(n, total))
        for (name, kind, _), n in zip(SYSTEM_FILL, system_filled, strict=True)
    ] + [
        FieldFill(
            field=f.row.code,
            system=False,
            type=f.row.type,
            required=f.row.required,
            filled=n,
            fill_rate=_rate(n, total),
        )
        for f, n in zip(fields, custom_filled, strict=True)
    ]
    breaks = [
        RuleBreak(
            field=rule.code,
            rule=rule.name,
            detail=rule.detail,
            count=count,
            examples=[
                BreakExample(element_id=element_id, value=value, message=explain(view, rule.code, value))
                for element_id, value in found.get(index, [])
            ],
            complete=rule.complete,
        )
        for index, (rule, count) in enumerate(broken)
    ]
    trigrams = bool(await connection.fetchval(HAS_TRIGRAMS_SQL))
    groups_found, group_counts = await _duplicates(connection, scope, fields, groups=groups, trigrams=trigrams)
    return QualityReport(
        entity_type=meta.code,
        total=total,
        fields=fill,
        rule_breaks=breaks,
        duplicates=groups_found,
        duplicate_counts=group_counts,
        duplicates_complete=total <= DUPLICATES_WINDOW,
        limits=ReportLimits(
            examples_per_rule=examples,
            groups_per_reason=groups,
            ids_per_group=IDS_PER_GROUP,
            duplicates_window=DUPLICATES_WINDOW,
            pattern_values_checked=PATTERN_VALUES,
            similar_titles_window=SIMILAR_TITLES_WINDOW if trigrams else None,
            similar_titles_threshold=SIMILAR_TITLES_THRESHOLD,
        ),
        generated_at=datetime.now(UTC),
    )


async def _counts(
    connection: SessionConnection, scope: Readable, fields: list[FieldMeta], rules: list[Rule]
) -> tuple[int, list[int], list[int], list[int]]:
    """Every fill count and rule-break count (patterns: 0 for now) in one aggregate."""
    params = scope.params()
    where = scope.where(params)
    columns = ["count(*)"]
    columns += [f"count(*) FILTER (WHERE {sql})" for _, _, sql in SYSTEM_FILL]
    columns += [f"count(*) FILTER (WHERE {_filled(f)})" for f in fields]
    columns += ["0" if rule.name == "pattern" else f"count(*) FILTER (WHERE {rule.breaks(params)})" for rule in rules]
    row = await connection.fetchrow(f"SELECT {', '.join(columns)} {scope.source} WHERE {where}", *params.values)
    numbers = [int(value) for value in row]
    systems, customs = len(SYSTEM_FILL), len(fields)
    return (
        numbers[0],
        numbers[1 : 1 + systems],
        numbers[1 + systems : 1 + systems + customs],
        numbers[1 + systems + customs :],
    )


async def _check_patterns(
    connection: SessionConnection, scope: Readable, rules: list[Rule], counts: list[int]
) -> tuple[list[Rule], list[int]]:
    """Patterns run on RE2 in Python: each field's distinct values (at most PATTERN_VALUES) are checked, then one
    aggregate counts the elements holding a refused one."""
    checked = list(rules)
    for index, rule in enumerate(rules):
        if rule.name != "pattern":
            continue
        params = scope.params()
        column = f"r.{quote(rule.code)}"
        value = f"unnest({column})" if rule.field.row.multiple else column
        # No DISTINCT: a hash of every value before the first row out; the scan stops at the limit instead.
        rows = await connection.fetch(
            f"SELECT v FROM (SELECT {value} AS v {scope.source} WHERE {scope.where(params)}) s "
            f"WHERE v IS NOT NULL LIMIT {params.add(PATTERN_VALUES + 1)}::int",
            *params.values,
        )
        values = list(dict.fromkeys(row[0] for row in rows[:PATTERN_VALUES]))
        checked[index] = Rule(
            rule.field,
            rule.name,
            rule.detail,
            rule.limit,
            refused=tuple(pattern_breaks(rule, values)),
            complete=len(rows) <= PATTERN_VALUES,
        )
    refused = [index for index, rule in enumerate(checked) if rule.name == "pattern" and rule.refused]
    if not refused:
        return checked, counts
    params = scope.params()
    where = scope.where(params)
    columns = [f"count(*) FILTER (WHERE {checked[index].breaks(params)})" for index in refused]
    row = await connection.fetchrow(f"SELECT {', '.join(columns)} {scope.source} WHERE {where}", *params.values)
    counts = list(counts)
    for index, count in zip(refused, row, strict=True):
        counts[index] = int(count)
    return checked, counts


async def _examples(
    connection: SessionConnection, scope: Readable, rules: list[Rule], limit: int
) -> dict[int, list[tuple[uuid.UUID, Any]]]:
    """The oldest few elements breaking each rule, with their stored (JSON) value: one statement."""
    if not rules:
        return {}
    params = scope.params()
    parts = [
        f"(SELECT {index} AS rule, e.id, (e.values -> {params.add(rule.code)}::text)::text AS value {scope.source} "
        f"WHERE {scope.where(params)} AND {rule.breaks(params)} ORDER BY e.created_at, e.id "
        f"LIMIT {params.add(limit)}::int)"
        for index, rule in enumerate(rules)
    ]
    found: dict[int, list[tuple[uuid.UUID, Any]]] = {}
    for row in await connection.fetch(" UNION ALL ".join(parts), *params.values):
        value = orjson.loads(row["value"]) if row["value"] is not None else None
        found.setdefault(row["rule"], []).append((row["id"], value))
    return found


async def _duplicates(
    connection: SessionConnection, scope: Readable, fields: list[FieldMeta], *, groups: int, trigrams: bool
) -> tuple[list[DuplicateGroup], list[DuplicateCount]]:
    params = scope.params()
    keyed = [f for f in fields if f.row.type in ("email", "phone")]
    source = scope.source if keyed else "FROM elements e"  # titles alone need no read model
    window = f"{params.add(DUPLICATES_WINDOW)}::int"
    keys = duplicates.keys_sql(source, scope.where(params), keyed, window)
    rows = await connection.fetch(
        duplicates.grouped(keys, params, groups=groups, ids_per_group=IDS_PER_GROUP), *params.values
    )
    found = [
        DuplicateGroup(reason=row["reason"], key=row["key"], size=row["size"], element_ids=list(row["ids"]))
        for row in rows
    ]
    reasons: list[DuplicateReason] = ["email", "phone", "title"]
    present = {f.row.type for f in keyed} | {"title"}
    counts = [
        DuplicateCount(reason=reason, groups=next((row["groups"] for row in rows if row["reason"] == reason), 0))
        for reason in reasons
        if reason in present
    ]
    if trigrams:
        similar = await _similar_titles(connection, scope)
        counts.append(DuplicateCount(reason="similar_title", groups=len(similar)))
        found += [
            DuplicateGroup(reason="similar_title", key=None, size=len(ids), element_ids=ids[:IDS_PER_GROUP])
            for ids in similar[:groups]
        ]
    return found, counts


async def _similar_titles(connection: SessionConnection, scope: Readable) -> list[list[uuid.UUID]]:
    params = scope.params()
    sql = duplicates.similar_pairs(
        "FROM elements e",
        scope.where(params),
        params,
        window=SIMILAR_TITLES_WINDOW,
        threshold=SIMILAR_TITLES_THRESHOLD,
    )
    pairs = [(row[0], row[1]) for row in await connection.fetch(sql, *params.values)]
    return sorted(duplicates.components(pairs), key=lambda ids: (-len(ids), ids[0]))


# --- merging -----------------------------------------------------------------------------------------------------

SYSTEM_MERGEABLE = ("title", "assigned_to", "amount", "currency", "source", "begin_date", "close_date")
UUID_ARRAY = ARRAY(PgUUID(as_uuid=True))
# A moved comment keeps where it was written.
MOVED_FROM = func.jsonb_build_object("moved_from", cast(TimelineEntry.element_id, Text))
# A merged element's links become the survivor's; one it would then hold twice, or to itself, is dropped.
MOVE_LINKS_SQL = text(
    "WITH gone AS (DELETE FROM element_links WHERE workspace_id = :workspace "
    "AND (parent_id = ANY(:merged) OR child_id = ANY(:merged)) RETURNING *), "
    "moved AS (SELECT DISTINCT ON (parent_id, child_id) parent_id, child_id, relation_id, created_at FROM ("
    "SELECT CASE WHEN parent_id = ANY(:merged) THEN :survivor ELSE parent_id END AS parent_id, "
    "CASE WHEN child_id = ANY(:merged) THEN :survivor ELSE child_id END AS child_id, relation_id, created_at "
    "FROM gone) m WHERE parent_id <> child_id ORDER BY parent_id, child_id, created_at), "
    "added AS (INSERT INTO element_links (parent_id, child_id, relation_id, workspace_id, created_at) "
    "SELECT parent_id, child_id, relation_id, :workspace, created_at FROM moved ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM added) AS added"
).bindparams(
    bindparam("merged", type_=UUID_ARRAY),
    bindparam("survivor", type_=PgUUID(as_uuid=True)),
    bindparam("workspace", type_=PgUUID(as_uuid=True)),
)


def _empty(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _json(value: Any) -> Any:
    """A system field's value as the API shows it."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | uuid.UUID):
        return str(value)
    return value


async def _lock(session: AsyncSession, actor: Actor, survivor_id: uuid.UUID, data: MergeRequest) -> list[Element]:
    """The survivor and the merged elements, locked in id order (two merges never wait on each other in a
    circle); NotFound for any missing in this workspace."""
    ids = [survivor_id, *data.merged_ids]
    rows = await session.scalars(
        select(Element)
        .where(Element.workspace_id == actor.workspace_id, Element.id.in_(ids))
        .order_by(Element.id)
        .with_for_update()
    )
    by_id = {element.id: element for element in rows}
    missing = next((element_id for element_id in ids if element_id not in by_id), None)
    if missing is not None:
        raise NotFound(f"Element {missing} not found")
    return [by_id[element_id] for element_id in ids]


async def _check_merged(
    session: AsyncSession, actor: Actor, meta: TypeMeta, access: TypeAccess, merged: list[Element]
) -> None:
    """Each merged element: one the actor may read (else 404), of the survivor's type (422), live (409), that they
    may delete (403)."""
    errors = ErrorCollector()
    for index, element in enumerate(merged):
        if element.entity_type_id != meta.id:
            other = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
            actor.on(other).check(
                "read", element.pipeline_id, element.assigned_to, element.created_by, element_id=element.id
            )
            errors.add(f"merged_ids[{index}]", f"is a {other.code!r} element, not a {meta.code!r}")
            continue
        access.check("delete", element.pipeline_id, element.assigned_to, element.created_by, element_id=element.id)
        if element.deleted_at is not None:
            raise Conflict(f"Element {element.id} is in the recycle bin: restore it first")
    errors.raise_if_any("The merge is not valid")


def _plan(
    view: TypeMeta, access: TypeAccess, survivor: Element, merged: list[Element], data: MergeRequest
) -> list[tuple[str, Element, Any]]:
    """(field, source element, value) for each survivor field that changes; custom values in their JSON form."""
    sources = {element.id: element for element in [survivor, *merged]}
    errors = ErrorCollector()
    for name, source_id in data.fields.items():
        if name not in SYSTEM_MERGEABLE and name not in view.fields:
            errors.add(f"fields.{name}", f"unknown field {name!r} on entity type {view.code!r}")
        elif source_id not in sources:
            errors.add(f"fields.{name}", f"{source_id} is neither the survivor nor one of merged_ids")
    errors.raise_if_any("The merge is not valid")
    access.check_fields(name for name in data.fields if name in view.fields)  # hidden or read-only: 403
    writable = [code for code in view.fields if access.full or code not in access.grants.read_only]
    plan: list[tuple[str, Element, Any]] = []
    for name in [*SYSTEM_MERGEABLE, *writable]:

        def value_of(element: Element, name: str = name) -> Any:
            return getattr(element, name) if name in SYSTEM_MERGEABLE else element.values.get(name)

        if name in data.fields:
            source: Element | None = sources[data.fields[name]]
        elif data.fill_empty and _empty(value_of(survivor)):
            source = next((element for element in merged if not _empty(value_of(element))), None)
        else:
            source = None
        if source is not None and source is not survivor and value_of(source) != value_of(survivor):
            plan.append((name, source, value_of(source)))
    return plan


async def _hidden_by_some_role(session: AsyncSession, workspace_id: uuid.UUID, type_id: uuid.UUID) -> set[str]:
    """Fields some role of the workspace hides: their values stay out of the history, which every reader sees."""
    rows = await session.scalars(
        select(func.jsonb_array_elements(AccessRole.permissions["fields"])).where(
            AccessRole.workspace_id == workspace_id, AccessRole.permissions.has_key("fields")
        )
    )
    return {
        rule["field"]
        for rule in rows
        if isinstance(rule, dict) and rule.get("access") == "hidden" and rule.get("entity_type_id") == str(type_id)
    }


async def _move_related(
    session: AsyncSession, actor: Actor, survivor: Element, merged_ids: list[uuid.UUID]
) -> tuple[int, int, int, int]:
    """Links, tasks and comments of the merged elements become the survivor's: (links moved, links dropped, tasks,
    comments)."""
    links = (
        await session.execute(
            MOVE_LINKS_SQL, {"workspace": actor.workspace_id, "merged": merged_ids, "survivor": survivor.id}
        )
    ).one()
    tasks = await session.scalars(
        update(Task)
        .where(Task.workspace_id == actor.workspace_id, Task.element_id.in_(merged_ids))
        .values(element_id=survivor.id, updated_at=func.now())
        .returning(Task.id)
    )
    moved_tasks = len(tasks.all())
    comments = await session.scalars(
        update(TimelineEntry)
        .where(
            TimelineEntry.workspace_id == actor.workspace_id,
            TimelineEntry.element_id.in_(merged_ids),
            TimelineEntry.kind == "comment",
        )
        .values(
            element_id=survivor.id,
            data=TimelineEntry.data.op("||")(
                func.jsonb_build_object("moved_from", cast(TimelineEntry.element_id, Text))
            ),
        )
        .returning(TimelineEntry.id)
    )
    return int(links.added), int(links.gone) - int(links.added), moved_tasks, len(comments.all())


async def merge(session: AsyncSession, actor: Actor, survivor_id: uuid.UUID, data: MergeRequest) -> MergeResult:
    if survivor_id in data.merged_ids:
        raise Invalid(
            "The merge is not valid",
            errors=[FieldError("merged_ids", "holds the survivor: it cannot merge into itself")],
        )
    survivor, *merged = await _lock(session, actor, survivor_id, data)
    meta = await cached_type_meta(session, actor.workspace_id, survivor.entity_type_id)
    access = actor.on(meta)
    access.check("update", survivor.pipeline_id, survivor.assigned_to, survivor.created_by, element_id=survivor.id)
    await _check_merged(session, actor, meta, access, merged)
    if survivor.deleted_at is not None:
        raise Conflict("The survivor is in the recycle bin: restore it first")
    if data.version is not None and data.version != survivor.version:
        raise VersionMismatch(f"The element is at version {survivor.version}, not {data.version}")
    plan = _plan(meta.without(access.hidden), access, survivor, merged, data)
    taken = [
        TakenValue(field=name, from_id=source.id, value=value if name in meta.fields else _json(value))
        for name, source, value in plan
    ]
    if plan:
        changes: dict[str, Any] = {name: value for name, _, value in plan if name in SYSTEM_MERGEABLE}
        values = {name: value for name, _, value in plan if name not in SYSTEM_MERGEABLE}
        try:
            update_data = ElementUpdate.model_validate({**changes, **({"values": values} if values else {})})
            await element_service.update_element(session, actor, survivor.id, update_data)
        except ValidationError as exc:  # a stored system value the update schema refuses (none should be)
            errors = [FieldError(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            raise Invalid("A value the survivor would take is not valid today", errors=errors) from exc
        except Invalid as exc:
            raise Invalid(
                "A value the survivor would take is not valid today: pick another element for it in `fields`",
                errors=exc.errors,
            ) from exc
    merged_ids = [element.id for element in merged]
    links_moved, links_dropped, tasks_moved, comments_moved = await _move_related(session, actor, survivor, merged_ids)
    private = await _hidden_by_some_role(session, actor.workspace_id, meta.id)
    add_entry(
        session,
        actor,
        "merged",
        element_id=survivor.id,
        data={
            "merged_ids": [str(element_id) for element_id in merged_ids],
            "taken": [
                {"field": t.field, "from_id": str(t.from_id), **({} if t.field in private else {"value": t.value})}
                for t in taken
            ],
            "links_moved": links_moved,
            "tasks_moved": tasks_moved,
            "comments_moved": comments_moved,
        },
    )
    for element in merged:
        add_entry(session, actor, "merged_into", element_id=element.id, data={"survivor_id": str(survivor.id)})
        await element_service.delete_element(session, actor, element.id)
    record_event(
        session,
        actor.workspace_id,
        "element.merged",
        entity_type_id=meta.id,
        element_id=survivor.id,
        payload={
            "element_id": str(survivor.id),
            "entity_type": meta.code,
            "merged_ids": [str(element_id) for element_id in merged_ids],
        },
    )
    await session.flush()
    return MergeResult(
        survivor=await element_service.get_element(session, actor, survivor.id),
        merged_ids=merged_ids,
        taken=taken,
        links_moved=links_moved,
        links_dropped=links_dropped,
        tasks_moved=tasks_moved,
        comments_moved=comments_moved,
        recycle_bin=meta.settings.recycle_bin_enabled,
    )
