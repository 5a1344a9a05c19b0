"""The estimator's arithmetic on known numbers (app/calltime/estimator.py)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.calendar import hours
from app.calltime import estimator
from app.calltime.estimator import HOURS, Counts, Priors, estimate

FLAT = Priors(neighbour_weight=0.0, same_hour_weight=0.0)


def counts(**by_hour: tuple[int, int]) -> Counts:
    """`h10=(3, 4)`: 3 answered of 4 calls at hour-of-week 10."""
    c = Counts()
    for key, (answered, total) in by_hour.items():
        c.answered[int(key[1:])] = answered
        c.total[int(key[1:])] = total
    return c


def test_hour_of_week_is_local() -> None:
    monday_noon_berlin = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 in Berlin (CET)
    assert estimator.hour_of_week(monday_noon_berlin, ZoneInfo("Europe/Berlin")) == 12
    assert estimator.hour_of_week(monday_noon_berlin, ZoneInfo("America/New_York")) == 6
    sunday_late = datetime(2026, 12, 13, 23, 30, tzinfo=UTC)
    assert estimator.hour_of_week(sunday_late, ZoneInfo("UTC")) == 167
    assert estimator.hour_of_week(sunday_late, ZoneInfo("Europe/Berlin")) == 0  # Monday 00:30 there


def test_counts_of_calls() -> None:
    c = Counts.of([10, 10, 10, 11], [True, False, True, False])
    assert (c.answered[10], c.total[10], c.answered[11], c.total[11]) == (2, 3, 0, 1)
    assert c.total.sum() == 4


def test_smoothing_lends_neighbours_and_the_same_hour_of_other_days() -> None:
    values = np.zeros(HOURS)
    values[24 + 10] = 10  # Tuesday 10:00
    smoothed = estimator.smooth(values, neighbour_weight=0.3, same_hour_weight=0.1)
    assert smoothed[24 + 10] == 10
    assert smoothed[24 + 9] == smoothed[24 + 11] == pytest.approx(3)
    assert smoothed[10] == smoothed[6 * 24 + 10] == pytest.approx(1)  # Monday and Sunday 10:00
    assert smoothed[24 + 12] == 0
    wrap = np.zeros(HOURS)
    wrap[167] = 1
    assert estimator.smooth(wrap, neighbour_weight=0.5, same_hour_weight=0)[0] == 0.5  # the week wraps round


def test_the_levels_shrink_as_beta_binomial_posteriors() -> None:
    workspace = counts(h10=(30, 100), h11=(10, 100))  # 40 / 200 overall
    segment = counts(h10=(16, 20))
    contact = counts(h10=(0, 4))
    blend = estimate(contact, segment, workspace, Priors(workspace=2, segment=8, contact=4, **_flat()))
    base = (40 + 1) / (200 + 2)
    assert blend.base_rate == pytest.approx(base)
    p_w = (2 * base + 30) / (2 + 100)
    p_s = (8 * p_w + 16) / (8 + 20)
    p_c = (4 * p_s + 0) / (4 + 4)
    assert blend.probability[10] == pytest.approx(p_c)
    # Unrolled: the weighted mean of the raw rates with the shrink weights, which add up to 1.
    w_c, w_s, w_w, w_0 = (
        blend.weight_contact[10],
        blend.weight_segment[10],
        blend.weight_workspace[10],
        blend.weight_base[10],
    )
    assert (w_c, w_s) == (pytest.approx(0.5), pytest.approx(0.5 * 20 / 28))
    assert w_w == pytest.approx((1 - w_c - w_s) * 100 / 102)
    assert w_c + w_s + w_w + w_0 == pytest.approx(1)
    assert w_c * 0 + w_s * 16 / 20 + w_w * 30 / 100 + w_0 * base == pytest.approx(p_c)
    # An hour nobody called: the overall rate.
    assert blend.probability[50] == pytest.approx(base)
    assert blend.weight_base[50] == pytest.approx(1)


def _flat() -> dict[str, float]:
    return {"neighbour_weight": 0.0, "same_hour_weight": 0.0}


def test_a_thin_own_history_shrinks_toward_the_segment_and_a_long_one_does_not() -> None:
    workspace = counts(h10=(50, 100))
    segment = counts(h10=(45, 50))  # 90 %
    thin = estimate(counts(h10=(0, 1)), segment, workspace, FLAT).probability[10]
    long = estimate(counts(h10=(0, 40)), segment, workspace, FLAT).probability[10]
    p_s = (8 * (2 * 51 / 102 + 50) / 102 + 45) / (8 + 50)
    assert thin == pytest.approx(4 / 5 * p_s)  # one unanswered call moves it a fifth of the way
    assert 0.6 < thin < 0.85
    assert long < 0.1


def test_slots_follow_the_working_hours_and_rank_by_probability() -> None:
    tz = ZoneInfo("America/New_York")
    now = datetime(2026, 12, 7, 14, 10, tzinfo=UTC)  # Monday 09:10 in New York
    week = {day: ([(9 * 60, 12 * 60)] if day == "mon" else []) for day in hours.DAYS}  # Mon 09-12 New York
    working = hours.working_intervals(week, tz, now, now + timedelta(days=7))
    p = np.zeros(HOURS)
    p[10], p[11], p[9] = 0.5, 0.8, 0.2  # Monday 10:00, 11:00, 09:00 local
    slots = estimator.candidate_slots(working, tz, p, now=now, until=now + timedelta(days=7))
    assert [s.hour for s in slots] == [9, 10, 11]
    assert slots[0].starts_at == now  # the hour already begun: from now
    assert slots[0].ends_at == datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert [s.hour for s in estimator.rank(slots)] == [11, 10, 9]
    # Less than `min_minutes` of an hour left: not a slot.
    late = now + timedelta(minutes=45)
    assert [s.hour for s in estimator.candidate_slots(working, tz, p, now=late, until=late + timedelta(days=1))] == [
        10,
        11,
    ]
