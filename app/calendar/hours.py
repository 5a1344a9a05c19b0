"""Local time arithmetic of the calendar, free of the database: weekly working hours, the UTC span of local days,
and wall-clock times given without an offset.

Everything is computed day by day in the user's (or the event's) IANA time zone and only then turned into UTC, so a
day when the clocks change keeps its local hours: a 09:00 start is 08:00 UTC in Berlin's winter and 07:00 UTC in its
summer, and the day itself is 23 or 25 hours long.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
DAY_MINUTES = 24 * 60
MAX_INTERVALS_PER_DAY = 12
MAX_SPAN_DAYS = 366
# Far enough either way for any calendar, near enough that no conversion overflows `datetime`.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# minutes since local midnight: [start, end), end at most 24:00
Minutes = tuple[int, int]
Week = Mapping[str, Sequence[Minutes]]

DEFAULT_WEEK: dict[str, list[Minutes]] = {day: ([(9 * 60, 18 * 60)] if day in DAYS[:5] else []) for day in DAYS}


def zone(name: str) -> ZoneInfo:
    """The zone of a stored name (validated when it was written); UTC if this machine's tz database lacks it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_clock(value: str, *, end: bool) -> int:
    """`HH:MM` as minutes since midnight; `24:00` only as the end of an interval. ValueError when malformed."""
    hours, sep, minutes = value.partition(":")
    digits = hours + minutes
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{value!r} is not a time of day as HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > DAY_MINUTES or (total == DAY_MINUTES and not end):
        raise ValueError(f"{value!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return total


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_day(intervals: Sequence[Sequence[str]]) -> list[Minutes]:
    """One day's `[["09:00", "13:00"], …]`, checked: each start before its end, in order, not overlapping."""
    if len(intervals) > MAX_INTERVALS_PER_DAY:
        raise ValueError(f"at most {MAX_INTERVALS_PER_DAY} intervals a day")
    parsed: list[Minutes] = []
    for interval in intervals:
        if len(interval) != 2:
            raise ValueError("each interval is [start, end]")
        start, finish = parse_clock(interval[0], end=False), parse_clock(interval[1], end=True)
        if finish <= start:
            raise ValueError(f"{interval[0]}-{interval[1]} does not end after it starts (split a night shift in two)")
        parsed.append((start, finish))
    parsed.sort()
    for before, after in pairwise(parsed):
        if after[0] < before[1]:
            raise ValueError(f"{format_clock(after[0])} starts before {format_clock(before[1])} ends")
    return parsed


def parse_week(stored: Mapping[str, Sequence[Sequence[str]]] | None) -> dict[str, list[Minutes]]:
    """A stored week (every day optional: a missing one is a day off); None is the default week."""
    if stored is None:
        return {day: list(intervals) for day, intervals in DEFAULT_WEEK.items()}
    return {day: parse_day(stored.get(day) or []) for day in DAYS}


def format_week(week: Week) -> dict[str, list[list[str]]]:
    return {day: [[format_clock(s), format_clock(e)] for s, e in week.get(day, [])] for day in DAYS}


def at_local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local day (24:00 is the next midnight).

    A time the clocks skip (02:30 when they jump from 02:00 to 03:00) falls as far after the jump as it was meant
    after 02:00; a time they pass twice is its first occurrence (fold=0, Python's rule)."""
    if minutes >= DAY_MINUTES:
        day, minutes = day + timedelta(days=1), minutes - DAY_MINUTES
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=tz)
    return local.astimezone(UTC)


def day_span(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local days `first`..`last` (inclusive) as a UTC span: local midnight to the local midnight after `last`."""
    return at_local(first, 0, tz), at_local(last, DAY_MINUTES, tz)


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[date]:
    """Every local day that the UTC span [start, end) touches (a day either side, for intervals crossing midnight)."""
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    if (last - day).days > MAX_SPAN_DAYS + 2:
        raise ValueError(f"a span of at most {MAX_SPAN_DAYS} days")
    while day <= last:
        yield day
        day += timedelta(days=1)


def working_intervals(week: Week, tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The working intervals of a week of local hours within the UTC span [start, end), in UTC, in order.

    Intervals that touch (a day ending at 24:00 and the next starting at 00:00) are joined. At most MAX_SPAN_DAYS.
    """
    found: list[tuple[datetime, datetime]] = []
    for day in local_days(start, end, tz):
        for begin_minutes, end_minutes in week.get(DAYS[day.weekday()], ()):
            begins = max(at_local(day, begin_minutes, tz), start)
            ends = min(at_local(day, end_minutes, tz), end)
            if begins >= ends:
                continue  # outside the span, or skipped by the clocks (02:00-03:00 on the spring change)
            if found and found[-1][1] >= begins:
                found[-1] = (found[-1][0], max(found[-1][1], ends))
            else:
                found.append((begins, ends))
    return found


def wall_time_instant(value: datetime, tz: ZoneInfo) -> datetime:
    """A datetime as a UTC instant: one with an offset as it is, one without as a wall-clock time in `tz`.

    ValueError for a wall-clock time that does not exist there (skipped when the clocks jump forward), or one outside
    the years the calendar takes."""
    check_year(value)
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)
    instant = value.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != value:
        raise ValueError(f"{value.isoformat()} does not exist in {tz.key}: the clocks skip it")
    return instant


def check_year(value: date) -> None:
    """ValueError outside 1900-2199 (a `datetime` is a `date` too)."""
    if not EARLIEST.year <= value.year < LATEST.year:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year - 1}")
