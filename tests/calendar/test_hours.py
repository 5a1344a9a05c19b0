"""Working hours and local days in UTC, across daylight-saving changes (no database)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.calendar import hours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class TestWorkingIntervals:
    def test_the_spring_change_moves_the_utc_hours_not_the_local_ones(self) -> None:
        # Berlin goes from CET (+1) to CEST (+2) on Sunday 2026-03-29.
        week = hours.parse_week(None)
        found = hours.working_intervals(week, BERLIN, utc(2026, 3, 27), utc(2026, 4, 1))
        assert found == [
            (utc(2026, 3, 27, 8), utc(2026, 3, 27, 17)),  # Friday 09:00-18:00 CET
            (utc(2026, 3, 30, 7), utc(2026, 3, 30, 16)),  # Monday 09:00-18:00 CEST
            (utc(2026, 3, 31, 7), utc(2026, 3, 31, 16)),
        ]

    def test_the_autumn_change(self) -> None:
        # Sunday 2026-10-25: CEST (+2) -> CET (+1); 00:00-12:00 local that day is 13 real hours.
        week = {**hours.parse_week(None), "sun": [(0, 12 * 60)]}
        found = hours.working_intervals(week, BERLIN, utc(2026, 10, 24), utc(2026, 10, 27))
        assert found == [
            (utc(2026, 10, 24, 22), utc(2026, 10, 25, 11)),  # 00:00 CEST .. 12:00 CET
            (utc(2026, 10, 26, 8), utc(2026, 10, 26, 17)),  # Monday 09:00 CET
        ]
        assert found[0][1] - found[0][0] == timedelta(hours=13)

    def test_hours_the_clocks_skip_are_no_work(self) -> None:
        week = {day: [] for day in hours.DAYS} | {"sun": [(2 * 60, 3 * 60), (3 * 60, 4 * 60)]}
        found = hours.working_intervals(week, BERLIN, utc(2026, 3, 28), utc(2026, 3, 30))
        # 02:00-03:00 does not exist on 2026-03-29; 03:00-04:00 CEST is 01:00-02:00 UTC.
        assert found == [(utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))]

    def test_clipped_to_the_range_and_joined_across_midnight(self) -> None:
        week = {day: [(22 * 60, 24 * 60)] for day in hours.DAYS}
        week["tue"] = [(0, 6 * 60), (22 * 60, 24 * 60)]
        found = hours.working_intervals(week, NEW_YORK, utc(2026, 1, 6, 0), utc(2026, 1, 6, 10))
        # Monday 22:00 EST = 03:00 UTC Tuesday, joined with Tuesday 00:00-06:00 EST (05:00-11:00 UTC), clipped.
        assert found == [(utc(2026, 1, 6, 3), utc(2026, 1, 6, 10))]

    def test_a_range_longer_than_a_year_is_refused(self) -> None:
        with pytest.raises(ValueError, match="366"):
            hours.working_intervals(hours.parse_week(None), BERLIN, utc(2026, 1, 1), utc(2027, 6, 1))


class TestLocalDays:
    def test_change_days_are_23_and_25_hours_long(self) -> None:
        start, end = hours.day_span(date(2026, 3, 29), date(2026, 3, 29), BERLIN)
        assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
        assert end - start == timedelta(hours=23)
        start, end = hours.day_span(date(2026, 10, 25), date(2026, 10, 25), BERLIN)
        assert end - start == timedelta(hours=25)

    def test_wall_clock_times(self) -> None:
        assert hours.wall_time_instant(datetime(2026, 3, 28, 9), BERLIN) == utc(2026, 3, 28, 8)
        assert hours.wall_time_instant(datetime(2026, 3, 30, 9), BERLIN) == utc(2026, 3, 30, 7)
        assert hours.wall_time_instant(utc(2026, 3, 30, 9), BERLIN) == utc(2026, 3, 30, 9)
        with pytest.raises(ValueError, match="skip"):
            hours.wall_time_instant(datetime(2026, 3, 29, 2, 30), BERLIN)
        with pytest.raises(ValueError, match="between"):
            hours.wall_time_instant(datetime(1, 1, 1), BERLIN)


class TestParsing:
    @pytest.mark.parametrize(
        ("day", "message"),
        [
            ([["9:00", "10:00"]], "HH:MM"),
            ([["10:00", "09:00"]], "does not end after"),
            ([["24:00", "24:00"]], "time of day"),
            ([["09:00", "12:00"], ["11:00", "13:00"]], "starts before"),
            ([["09:60", "10:00"]], "time of day"),
            ([["09:00"]], "start, end"),
            ([["00:00", "00:30"]] * 13, "at most"),
        ],
    )
    def test_bad_days(self, day: list[list[str]], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            hours.parse_day(day)

    def test_a_day_is_sorted_and_may_end_at_midnight(self) -> None:
        assert hours.parse_day([["14:00", "24:00"], ["08:00", "12:00"]]) == [(480, 720), (840, 1440)]
        assert hours.format_week({"mon": [(480, 1440)]})["mon"] == [["08:00", "24:00"]]
