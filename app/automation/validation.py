"""A rule's trigger and actions checked against its entity type when it is saved.

Everything a run would otherwise find out later (and fail on, or worse, retry) is a 422 naming the parameter:
unknown trigger parameters, unknown fields, stages and pipelines that are not the type's, values of the wrong type,
durations that are negative, not numbers or absurdly long. Parameters that are templates are checked as templates
here and as values when the run renders them.
"""

import math
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.automation.actions import check_templates
from app.automation.conditions import SYSTEM_FIELDS, check_condition
from app.automation.schedule import parse_cron
from app.elements.values import parse_values
from app.entity_types.meta import TypeMeta, get_type_meta
from app.errors import ErrorCollector, NotFound

TIME_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
# The longest wait a trigger, a delay or a task's due date may name: about five years.
MAX_DURATION_DAYS = 1830
MAX_DURATION_SECONDS = MAX_DURATION_DAYS * 86400

# The parameters each trigger type takes (besides `type`).
TRIGGER_PARAMS: dict[str, frozenset[str]] = {
    "element.created": frozenset(),
    "element.updated": frozenset({"fields"}),
    "element.entered_stage": frozenset({"from_stage_id"}),
    "element.deleted": frozenset(),
    "element.linked": frozenset(),
    "element.scored": frozenset(),
    "webhook.received": frozenset({"element_id", "find"}),
    "schedule": frozenset({"cron"}),
    "time_in_stage": frozenset(TIME_UNITS),
    "date_reached": frozenset({"field", *(f"offset_{unit}" for unit in TIME_UNITS)}),
    "activity.created": frozenset(),
    "activity.completed": frozenset(),
}
# Triggers whose event carries an activity: their conditions may use `activity.*` fields.
ACTIVITY_TRIGGERS = frozenset({"activity.created", "activity.completed"})


def check_duration(
    params: dict[str, Any],
    location: str,
    errors: ErrorCollector,
    *,
    prefix: str = "",
    negative: bool = False,
    required: bool = False,
) -> None:
    """`seconds` / `minutes` / `hours` / `days` (after `prefix`): finite numbers, in all at most MAX_DURATION_DAYS."""
    total = 0.0
    for unit, factor in TIME_UNITS.items():
        key = prefix + unit
        if key not in params or params[key] is None:
            continue
        value = params[key]
        path = f"{location}.{key}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors.add(path, "must be a number")
            return
        if value < 0 and not negative:
            errors.add(path, "may not be negative")
            return
        total += value * factor
    if abs(total) > MAX_DURATION_SECONDS:
        errors.add(location, f"a duration of at most {MAX_DURATION_DAYS} days")
    elif required and total <= 0:
        errors.add(location, "give how long: seconds, minutes, hours or days")


def check_trigger(meta: TypeMeta, trigger: dict[str, Any], stage_id: uuid.UUID | None, errors: ErrorCollector) -> None:
    kind = trigger["type"]
    for key in sorted(set(trigger) - {"type"} - TRIGGER_PARAMS.get(kind, frozenset())):
        errors.add(f"trigger.{key}", f"not a parameter of a {kind} trigger")
    if kind in ("element.entered_stage", "time_in_stage") and stage_id is None:
        errors.add("stage_id", f"a {kind} rule needs the stage it watches")
    if kind == "element.updated" and trigger.get("fields") is not None:
        _check_fields(meta, trigger["fields"], errors)
    if kind == "element.entered_stage" and trigger.get("from_stage_id") is not None:
        _check_stage_id(meta, trigger["from_stage_id"], "trigger.from_stage_id", errors)
    if kind == "time_in_stage":
        check_duration(trigger, "trigger", errors, required=True)
    if kind == "date_reached":
        code = trigger.get("field")
        field = meta.fields.get(code) if isinstance(code, str) else None
        if field is None or field.row.type not in ("date", "datetime"):
            errors.add("trigger.field", f"a date or datetime field of {meta.code!r}")
        check_duration(trigger, "trigger", errors, prefix="offset_", negative=True)
    if kind == "webhook.received":
        check_templates({k: v for k, v in trigger.items() if k in ("element_id", "find")}, "trigger", errors)
        if isinstance(trigger.get("find"), dict):
            check_condition(meta, trigger["find"], errors, location="trigger.find", hook=True, templated=True)
    if kind == "schedule":
        _check_cron(trigger.get("cron"), errors)


def _check_fields(meta: TypeMeta, fields: Any, errors: ErrorCollector) -> None:
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        errors.add("trigger.fields", "a list of field codes")
        return
    for index, code in enumerate(fields):
        if code not in meta.fields and code not in SYSTEM_FIELDS:
            errors.add(f"trigger.fields[{index}]", f"unknown field {code!r} on entity type {meta.code!r}")


def _check_cron(cron: Any, errors: ErrorCollector) -> None:
    if not isinstance(cron, str):
        errors.add("trigger.cron", "a cron expression, e.g. '0 9 * * 1-5'")
        return
    try:
        parse_cron(cron)
    except Exception as exc:
        errors.add("trigger.cron", str(exc))


def _check_stage_id(
    meta: TypeMeta, raw: Any, location: str, errors: ErrorCollector, pipeline_id: uuid.UUID | None = None
) -> None:
    if _templated(raw):
        return
    try:
        stage = meta.stages.get(uuid.UUID(str(raw)))
    except ValueError:
        errors.add(location, "must be an id (UUID)")
        return
    if stage is None:
        errors.add(location, f"stage {raw} is not a stage of {meta.code!r}")
    elif pipeline_id is not None and stage.pipeline_id != pipeline_id:
        errors.add(location, f"stage {raw} is not in pipeline {pipeline_id}")


def _check_stage_code(
    meta: TypeMeta, code: Any, location: str, errors: ErrorCollector, pipeline_id: uuid.UUID | None = None
) -> None:
    if not isinstance(code, str) or _templated(code):
        return
    stages = [s for s in meta.stages.values() if pipeline_id is None or s.pipeline_id == pipeline_id]
    if not any(s.code == code for s in stages):
        where = f"pipeline {pipeline_id}" if pipeline_id is not None else repr(meta.code)
        errors.add(location, f"no stage of {where} has the code {code!r}")


def _templated(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check_values(meta: TypeMeta, values: Any, location: str, errors: ErrorCollector) -> None:
    """Literal values are checked as an update would check them; a templated value only for its field's existence."""
    if not isinstance(values, dict):
        return  # the parameter model reports it
    literal = {}
    for code, value in values.items():
        if _templated(value):
            if code not in meta.fields:
                errors.add(f"{location}.values.{code}", f"unknown field {code!r} on entity type {meta.code!r}")
        else:
            literal[code] = value
    parse_values(meta, literal, errors, prefix=f"{location}.", creating=False)


async def check_actions(
    session: AsyncSession, actor: Actor, meta: TypeMeta, actions: list[dict[str, Any]], errors: ErrorCollector
) -> None:
    """Fields, stages, pipelines and linked types that the actions name must be the type's (or exist)."""
    for index, action in enumerate(actions):
        params, location = action.get("params", {}), f"actions[{index}].params"
        kind = action["type"]
        if kind == "set_fields":
            _check_values(meta, params.get("values"), location, errors)
        elif kind == "move_to_stage":
            if params.get("stage_id") is not None:
                _check_stage_id(meta, params["stage_id"], f"{location}.stage_id", errors)
            _check_stage_code(meta, params.get("stage_code"), f"{location}.stage_code", errors)
        elif kind == "move_to_pipeline":
            _check_pipeline(meta, params, location, errors)
        elif kind == "create_linked_element":
            await _check_linked(session, actor, params, location, errors)
        elif kind == "schedule_call":
            _check_segment(meta, params.get("segment"), f"{location}.segment", errors)


def _check_segment(meta: TypeMeta, codes: Any, location: str, errors: ErrorCollector) -> None:
    """The segment fields of `schedule_call` must be fields of the type (the shape is the parameter model's)."""
    if not isinstance(codes, list) or _templated(codes):
        return
    for index, code in enumerate(codes):
        if isinstance(code, str) and not _templated(code) and code not in meta.fields:
            errors.add(f"{location}[{index}]", f"{code[:100]!r} is not a field of {meta.code!r}")


def _check_pipeline(meta: TypeMeta, params: dict[str, Any], location: str, errors: ErrorCollector) -> None:
    raw = params.get("pipeline_id")
    if raw is None or _templated(raw):
        return
    try:
        pipeline_id = uuid.UUID(str(raw))
    except ValueError:
        return  # the parameter model reports it
    if pipeline_id not in meta.pipelines:
        errors.add(f"{location}.pipeline_id", f"pipeline {raw} is not a pipeline of {meta.code!r}")
        return
    if params.get("stage_id") is not None:
        _check_stage_id(meta, params["stage_id"], f"{location}.stage_id", errors, pipeline_id)
    _check_stage_code(meta, params.get("stage_code"), f"{location}.stage_code", errors, pipeline_id)


async def _check_linked(
    session: AsyncSession, actor: Actor, params: dict[str, Any], location: str, errors: ErrorCollector
) -> None:
    code = params.get("entity_type")
    if not isinstance(code, str) or _templated(code):
        return
    try:
        other = await get_type_meta(session, actor.workspace_id, code)
    except NotFound:
        errors.add(f"{location}.entity_type", f"unknown entity type {code!r}")
        return
    _check_stage_code(other, params.get("stage_code"), f"{location}.stage_code", errors)
    _check_values(other, params.get("values"), location, errors)
