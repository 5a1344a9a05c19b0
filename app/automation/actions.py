"""The parameters of each action type, validated when a rule is saved and again (rendered) when it runs."""

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from app.activities.models import ActivityDirection, ActivityKind, ActivityStatus, CallOutcome
from app.activities.schemas import MAX_DURATION_SECONDS, Payload
from app.automation.templates import check_template, is_template
from app.errors import ErrorCollector, FieldError, Invalid
from app.kit.jsonlimits import MAX_JSON_DEPTH, depth_error
from app.kit.signing import check_secret
from app.webhooks.targets import configured_allowed, url_problem

# The longest delay or due date an action may name: about five years.
MAX_DURATION_HOURS = 1830 * 24


class _Params(BaseModel):
    # No NaN or Infinity (JSON parsers accept them): a duration of Infinity would fail at run time.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SetFields(_Params):
    title: str | None = None
    assigned_to: uuid.UUID | None = None
    amount: float | None = None
    currency: str | None = None
    source: str | None = None
    values: dict[str, Any] | None = None


class MoveToStage(_Params):
    stage_id: uuid.UUID | None = None
    stage_code: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "MoveToStage":
        if (self.stage_id is None) == (self.stage_code is None):
            raise ValueError("give exactly one of stage_id and stage_code")
        return self


class MoveToPipeline(_Params):
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID | None = None
    stage_code: str | None = None
    mode: Literal["move", "copy"] = "move"


class Assign(_Params):
    """A user, or a routing policy (routed as `POST /elements/{id}/route` does: tier by score, free capacity)."""

    user_id: uuid.UUID | None = None
    policy_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one(self) -> "Assign":
        if (self.user_id is None) == (self.policy_id is None):
            raise ValueError("give exactly one of user_id and policy_id")
        return self


class Score(_Params):
    """Score the element through the scoring service (as `POST /elements/{id}/score`); `element.scored` fires."""

    model_id: uuid.UUID | None = Field(default=None, description="A trained model of the type; default: the active one")
    only_unscored: bool = Field(default=False, description="Keep a score the element has already")


class CreateTask(_Params):
    title: str = Field(min_length=1, max_length=500)
    description: str | None = None
    assignee_id: uuid.UUID | None = None
    due_in_hours: float | None = Field(default=None, ge=0, le=MAX_DURATION_HOURS)


class AddComment(_Params):
    text: str = Field(min_length=1, max_length=10000)


class CallWebhook(_Params):
    url: str = Field(pattern=r"^https?://", max_length=2000)
    secret: str | None = Field(default=None, description="Generated when absent; returned once")
    body: dict[str, Any] | None = Field(default=None, description="A custom body (templates allowed)")

    @field_validator("url")
    @classmethod
    def _callable(cls, url: str, info: ValidationInfo) -> str:
        """When a rule is saved, the address rules of subscriptions; a rendered URL is checked when it is sent."""
        problem = url_problem(url, configured_allowed()) if (info.context or {}).get("saving") else None
        if problem is not None:
            raise ValueError(problem)
        return url

    @field_validator("secret")
    @classmethod
    def _signing_key(cls, secret: str | None) -> str | None:
        if secret is not None:
            try:
                check_secret(secret)
            except ValueError as exc:  # binascii.Error too
                raise ValueError("a signing secret `whsec_<base64>`") from exc
        return secret


class CreateLinkedElement(_Params):
    entity_type: str
    title: str = ""
    stage_code: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    as_: Literal["child", "parent"] = Field(default="child", alias="as")


class Delay(_Params):
    seconds: float = Field(default=0, ge=0)
    minutes: float = Field(default=0, ge=0)
    hours: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> "Delay":
        if self.total_seconds > MAX_DURATION_HOURS * 3600:
            raise ValueError(f"a delay of at most {MAX_DURATION_HOURS // 24} days")
        return self

    @property
    def total_seconds(self) -> float:
        return self.seconds + self.minutes * 60 + self.hours * 3600


class Notify(_Params):
    user_id: uuid.UUID
    message: str = Field(min_length=1, max_length=5000)


class LogActivity(_Params):
    """An activity on the rule's element, logged as `POST /activities` logs one (`activity.created` fires)."""

    kind: ActivityKind
    direction: ActivityDirection | None = None
    subject: str = Field(default="", max_length=500)
    description: str | None = Field(default=None, max_length=10000)
    status: ActivityStatus = ActivityStatus.completed
    outcome: CallOutcome | None = None
    starts_in_minutes: float | None = Field(
        default=None, ge=0, le=MAX_DURATION_HOURS * 60, description="When it starts, from the run; default now"
    )
    duration_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)
    responsible_user_id: uuid.UUID | None = Field(default=None, description="Default: the element's assignee")
    payload: Payload | None = None

    @model_validator(mode="after")
    def _outcome(self) -> "LogActivity":
        if self.outcome is not None and self.kind is not ActivityKind.call:
            raise ValueError(f"only a call has an outcome, not a {self.kind.value}")
        if self.outcome is not None and self.status is not ActivityStatus.completed:
            raise ValueError("a planned call has no outcome yet")
        return self


class ScheduleCall(_Params):
    """A call task for the element's assignee at the best slot to call its contact (app/calltime) that the assignee's
    load allows: fewer than `max_calls_per_hour` of their tasks and events in that hour. The decision and its
    explanation go on the element's timeline (`call_scheduled`)."""

    within_days: int = Field(default=7, ge=1, le=31, description="How far ahead to look")
    duration_minutes: int = Field(default=15, ge=5, le=240, description="The call's expected length")
    title: str | None = Field(default=None, min_length=1, max_length=500, description="Default: `Call: <title>`")
    max_calls_per_hour: int = Field(default=4, ge=1, le=60, description="The assignee's tasks and events per hour")
    segment: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]] = Field(
        default_factory=list, max_length=5, description="Field codes that define similar contacts"
    )

    @field_validator("segment")
    @classmethod
    def _distinct(cls, codes: list[str]) -> list[str]:
        if len(set(codes)) != len(codes):
            raise ValueError("name each segment field once")
        return codes


class TriageRequest(_Params):
    """Triage the element as `POST /elements/{id}/triage` does (category and urgency from the type's trained triage
    model, written on its timeline); `apply` sets the fields, so a rule on `element.updated` can escalate by urgency.
    `escalate_if`: urgency values for which a task `escalation_title` is created as well."""

    apply: bool = True
    similar: int = Field(default=3, ge=0, le=20)
    escalate_if: list[str] | None = Field(default=None, max_length=20)
    escalation_title: str = Field(default="Escalated request", min_length=1, max_length=500)
    escalation_assignee_id: uuid.UUID | None = Field(default=None, description="Default: the element's assignee")


PARAMS: dict[str, type[_Params]] = {
    "set_fields": SetFields,
    "move_to_stage": MoveToStage,
    "move_to_pipeline": MoveToPipeline,
    "assign": Assign,
    "score": Score,
    "create_task": CreateTask,
    "add_comment": AddComment,
    "webhook": CallWebhook,
    "create_linked_element": CreateLinkedElement,
    "delay": Delay,
    "notify": Notify,
    "log_activity": LogActivity,
    "schedule_call": ScheduleCall,
    "triage": TriageRequest,
}


def _templates(value: Any, location: str, found: list[tuple[str, str]], depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:  # GraphQL literals reach here unscanned; this walk and rendering recurse
        raise Invalid("The action's parameters nest too deeply", errors=[depth_error(location)])
    if isinstance(value, dict):
        for key, item in value.items():
            _templates(item, f"{location}.{key}", found, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _templates(item, f"{location}[{index}]", found, depth + 1)
    elif is_template(value):
        found.append((location, value))


def check_templates(value: Any, location: str, errors: ErrorCollector) -> set[str]:
    """Check every template inside `value` (syntax, allowed tags, limits); returns the paths that hold one."""
    found: list[tuple[str, str]] = []
    _templates(value, location, found)
    for path, template in found:
        try:
            check_template(template, path)
        except Invalid as exc:
            errors.add(path, exc.errors[0].message)
    return {path for path, _ in found}


def check_params(action_type: str, params: dict[str, Any], location: str, errors: ErrorCollector) -> None:
    """Report bad parameters; a template string stands for any value, so it is only checked as a template."""
    templated = check_templates(params, location, errors)
    try:
        PARAMS[action_type].model_validate(params, context={"saving": True})
    except ValidationError as exc:
        for error in exc.errors():
            path = ".".join([location, *(str(p) for p in error["loc"])])
            if path not in templated:
                errors.add(path, error["msg"])


def parse_params(action_type: str, params: dict[str, Any], location: str = "params") -> _Params:
    """The rendered parameters; what does not fit is an Invalid naming the parameter (it would fail again)."""
    try:
        return PARAMS[action_type].model_validate(params)
    except ValidationError as exc:
        errors = [
            FieldError(".".join([location, *(str(p) for p in error["loc"])]), error["msg"]) for error in exc.errors()
        ]
        raise Invalid(f"The {action_type} action's parameters are not valid once rendered", errors=errors) from exc
