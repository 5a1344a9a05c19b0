import uuid
from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.calendar import hours
from app.calendar.models import EventKind
from app.kit.shown_once import SHOWN_ONCE
from app.tasks.models import TaskStatus

MAX_ATTENDEES = 100
TIMEZONES = frozenset(available_timezones()) | {"UTC"}


def check_timezone(value: str | None) -> str | None:
    """An IANA name this machine's time zone database knows (the users' rule, app/users/schemas.py)."""
    if value is not None and value not in TIMEZONES:
        raise ValueError("must be an IANA time zone such as Europe/Berlin")
    return value


Clock = Annotated[str, Field(max_length=5, examples=["09:00"])]
Interval = Annotated[list[Clock], Field(min_length=2, max_length=2, description='["HH:MM", "HH:MM"], end after start')]
Day = Annotated[list[Interval], Field(max_length=hours.MAX_INTERVALS_PER_DAY)]


# --- events -------------------------------------------------------------------------------------------------------


class EventCreate(BaseModel):
    """A timed event (`starts_at` and `ends_at`) or an all-day one (`start_date`, optionally `end_date`)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=10000)
    location: str | None = Field(default=None, max_length=500)
    kind: EventKind = EventKind.meeting
    owner_id: uuid.UUID | None = Field(
        default=None, description="Whose calendar it is in; default: the person acting (an API key must name one)"
    )
    starts_at: datetime | None = Field(
        default=None, description="With an offset, an instant; without one, a wall-clock time in `timezone`"
    )
    ends_at: datetime | None = Field(default=None, description="After `starts_at`")
    start_date: date | None = Field(default=None, description="An all-day event's first local day")
    end_date: date | None = Field(default=None, description="Its last local day, inclusive; default: `start_date`")
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name, e.g. Europe/Berlin; default: the owner's time zone"
    )
    element_id: uuid.UUID | None = Field(default=None, description="An element the event is about")
    attendee_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ATTENDEES)

    _tz = field_validator("timezone")(check_timezone)


class EventUpdate(BaseModel):
    """What to change. Times given alone keep the event's length (`starts_at` alone moves it); giving dates makes it
    all-day, giving times makes it timed. A new `timezone` keeps a timed event's instants and an all-day event's
    local days."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=10000)
    location: str | None = Field(default=None, max_length=500)
    kind: EventKind | None = None
    owner_id: uuid.UUID | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    timezone: str | None = Field(default=None, max_length=64)
    element_id: uuid.UUID | None = Field(default=None, description="null unbinds the event")
    attendee_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_ATTENDEES)

    _tz = field_validator("timezone")(check_timezone)


class EventRead(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    location: str | None
    kind: EventKind
    all_day: bool
    starts_at: datetime = Field(description="UTC; for an all-day event, local midnight of `start_date`")
    ends_at: datetime = Field(description="UTC; for an all-day event, local midnight after `end_date`")
    local_starts_at: datetime = Field(description="`starts_at` in the event's time zone")
    local_ends_at: datetime
    start_date: date | None
    end_date: date | None = Field(description="Inclusive")
    timezone: str
    element_id: uuid.UUID | None
    attendee_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str | None


# --- working hours ------------------------------------------------------------------------------------------------


class WeekSchedule(BaseModel):
    """Working hours per weekday, local to the user's time zone; a day left out or empty is a day off."""

    model_config = ConfigDict(extra="forbid")

    mon: Day = Field(default_factory=list, examples=[[["09:00", "13:00"], ["14:00", "18:00"]]])
    tue: Day = Field(default_factory=list)
    wed: Day = Field(default_factory=list)
    thu: Day = Field(default_factory=list)
    fri: Day = Field(default_factory=list)
    sat: Day = Field(default_factory=list)
    sun: Day = Field(default_factory=list)

    @field_validator(*hours.DAYS)
    @classmethod
    def _check_day(cls, value: list[list[str]]) -> list[list[str]]:
        return [[hours.format_clock(s), hours.format_clock(e)] for s, e in hours.parse_day(value)]


class ScheduleRead(BaseModel):
    user_id: uuid.UUID
    timezone: str = Field(description="The user's time zone, which the hours are in")
    is_default: bool = Field(description="No schedule was set: Monday to Friday, 09:00-18:00")
    schedule: WeekSchedule


class WorkingInterval(BaseModel):
    starts_at: datetime = Field(description="UTC")
    ends_at: datetime
    local_starts_at: datetime = Field(description="In the user's time zone")
    local_ends_at: datetime


# --- a user's calendar --------------------------------------------------------------------------------------------


class CalendarItem(BaseModel):
    kind: Literal["event", "task"]
    id: uuid.UUID
    title: str
    starts_at: datetime = Field(description="UTC; a task's due time")
    ends_at: datetime = Field(description="UTC; a task's due time again")
    local_starts_at: datetime = Field(description="In the calendar user's time zone")
    local_ends_at: datetime
    all_day: bool
    start_date: date | None
    end_date: date | None = Field(description="Inclusive")
    timezone: str = Field(description="The event's own time zone (a task: the user's)")
    event_kind: EventKind | None = Field(description="Events: meeting, call, deadline, other")
    task_status: TaskStatus | None = Field(description="Tasks: open or done")
    owner_id: uuid.UUID | None = Field(description="Events: whose event it is (the user, or someone they attend with)")
    element_id: uuid.UUID | None


class UserCalendar(BaseModel):
    user_id: uuid.UUID
    timezone: str
    starts_at: datetime = Field(description="The range asked for, UTC (inclusive)")
    ends_at: datetime = Field(description="Exclusive")
    items: list[CalendarItem] = Field(description="Events overlapping the range and tasks due in it, by start")
    truncated: bool = Field(description="More items than one answer holds: ask for a shorter range")
    working_hours: list[WorkingInterval]


# --- the iCalendar feed -------------------------------------------------------------------------------------------


class CalendarFeedCreated(BaseModel):
    user_id: uuid.UUID
    url: str = Field(
        description="The feed's address, for a calendar app; it is shown in this answer only",
        json_schema_extra=SHOWN_ONCE,
    )
    secret: str = Field(description="The secret in that address", json_schema_extra=SHOWN_ONCE)
    created_at: datetime
