"""The arithmetic on plain numbers: buckets, percentiles from buckets, AUC, the anomaly band, month ranges."""

import math
import random
from datetime import date

import pytest

from app.analytics import stats
from app.analytics.models import DAY, MONTH
from app.analytics.service import _grain_ranges


def test_buckets_have_eight_steps_per_doubling() -> None:
    assert stats.bucket_of(0.5) == 0
    assert stats.bucket_of(1) == 1
    assert stats.bucket_of(2) == 9
    low, high = stats.bucket_bounds(stats.bucket_of(3600))
    assert low <= 3600 < high
    assert high / low == pytest.approx(2 ** (1 / 8))


def test_percentiles_from_buckets_stay_within_a_bucket_of_the_truth() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(9, 1.5) for _ in range(5000))
    counts: dict[int, int] = {}
    for value in values:
        counts[stats.bucket_of(value)] = counts.get(stats.bucket_of(value), 0) + 1
    for q in (0.1, 0.5, 0.9, 0.99):
        truth = values[int(q * (len(values) - 1))]
        assert stats.histogram_percentile(counts, q) == pytest.approx(truth, rel=0.091)
    assert stats.histogram_cdf(counts, values[2500]) == pytest.approx(0.5, abs=0.01)
    assert stats.histogram_percentile({}, 0.5) is None


def test_auc_counts_ties_half() -> None:
    assert stats.roc_auc({90: 1}, {10: 1}) == 1
    assert stats.roc_auc({50: 2}, {50: 2}) == 0.5
    assert stats.roc_auc({80: 1, 20: 1}, {50: 2}) == 0.5
    assert stats.roc_auc({80: 1}, {}) is None


def test_anomaly_band_is_median_plus_minus_k_mad() -> None:
    low, high = stats.anomaly_band([10, 12, 11, 13, 9], k=3)
    assert (low + high) / 2 == 11
    assert high - 11 == pytest.approx(3 * 1 * stats.MAD_TO_SIGMA)
    assert stats.anomaly_band([5, 5], k=3) is None
    flat = stats.anomaly_band([100, 100, 100], k=3)
    assert flat is not None
    assert flat[0] < 100 < flat[1]
    assert not math.isclose(flat[0], flat[1])


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 3, 5), date(2026, 3, 20), [(DAY, date(2026, 3, 5), date(2026, 3, 20))]),
        (date(2026, 3, 1), date(2026, 3, 31), [(MONTH, date(2026, 3, 1), date(2026, 3, 31))]),
        (
            date(2026, 1, 15),
            date(2026, 4, 2),
            [
                (MONTH, date(2026, 2, 1), date(2026, 3, 31)),
                (DAY, date(2026, 1, 15), date(2026, 1, 31)),
                (DAY, date(2026, 4, 1), date(2026, 4, 2)),
            ],
        ),
        (date(2026, 12, 1), date(2027, 1, 31), [(MONTH, date(2026, 12, 1), date(2027, 1, 31))]),
    ],
)
def test_periods_split_into_whole_months_and_days(
    start: date, end: date, expected: list[tuple[int, date, date]]
) -> None:
    assert _grain_ranges(start, end, monthly=True) == expected
    assert _grain_ranges(start, end, monthly=False) == [(DAY, start, end)]
