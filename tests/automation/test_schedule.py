from datetime import UTC, datetime

import pytest

from app.automation.schedule import next_time
from app.errors import Invalid


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("*/15 * * * *", datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC), datetime(2026, 1, 5, 10, 15, tzinfo=UTC)),
        ("0 9 * * 1-5", datetime(2026, 1, 9, 9, 0, tzinfo=UTC), datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),  # Fri -> Mon
        ("30 23 31 12 *", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 12, 31, 23, 30, tzinfo=UTC)),
        ("0 0 * * 0", datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)),  # Sunday is 0
    ],
)
def test_next_time(cron: str, after: datetime, expected: datetime) -> None:
    assert next_time(cron, after) == expected


@pytest.mark.parametrize("cron", ["* * * *", "61 * * * *", "5-1 * * * *", "*/0 * * * *", "a * * * *"])
def test_bad_crons_are_refused(cron: str) -> None:
    with pytest.raises(Invalid):
        next_time(cron, datetime(2026, 1, 1, tzinfo=UTC))
