"""A small five-field cron (minute hour day month weekday): numbers, `*`, `a-b`, lists and `/step`."""

from datetime import datetime, timedelta

from app.errors import FieldError, Invalid

RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
MAX_SEARCH_MINUTES = 366 * 24 * 60


def _field(spec: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(body)
            end = high if step_text else start
        if step < 1 or start < low or end > high or start > end:
            raise ValueError(part)
        values.update(range(start, end + 1, step))
    return values


def parse_cron(expression: str, location: str = "trigger.cron") -> list[set[int]]:
    parts = expression.split()
    if len(parts) != 5:
        raise Invalid("The schedule is not valid", errors=[FieldError(location, "a cron needs 5 fields")])
    try:
        return [_field(part, low, high) for part, (low, high) in zip(parts, RANGES, strict=True)]
    except ValueError as exc:
        raise Invalid("The schedule is not valid", errors=[FieldError(location, f"bad cron field {exc}")]) from exc


def next_time(expression: str, after: datetime) -> datetime:
    """The first minute strictly after `after` that the cron matches (UTC)."""
    minutes, hours, days, months, weekdays = parse_cron(expression)
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(MAX_SEARCH_MINUTES):
        if (
            moment.minute in minutes
            and moment.hour in hours
            and moment.day in days
            and moment.month in months
            and (moment.weekday() + 1) % 7 in weekdays
        ):
            return moment
        moment += timedelta(minutes=1)
    raise Invalid("The schedule never fires", errors=[FieldError("trigger.cron", "matches no date")])
