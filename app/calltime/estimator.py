"""Best time to call, the arithmetic: a hierarchical Beta-Binomial estimate of the answer probability per
hour-of-week, and the ranking of the next slots. Pure functions over numpy arrays, free of the database: the service
(app/calltime/service.py) and the evaluation (bench/call_time_eval.py) run the same code.

Hours of the week: 168 bins, `weekday * 24 + hour` (Monday 00:00-01:00 is 0, Sunday 23:00-24:00 is 167), always in
the contact's local time.

Levels, each one's posterior the prior of the next:

    base       Beta(m_w * p0, m_w * (1 - p0))            p0: the workspace's overall answer rate (Laplace-smoothed)
    workspace  p_w[h] = (m_w * p0     + a_w[h]) / (m_w + n_w[h])     every call of the type
    segment    p_s[h] = (m_s * p_w[h] + a_s[h]) / (m_s + n_s[h])     calls of the contacts like this one
    contact    p_c[h] = (m_c * p_s[h] + a_c[h]) / (m_c + n_c[h])     the contact's own calls

`a` counts answered calls and `n` all calls (after a light smoothing that lends each hour a share of its neighbours'
calls, and of the same hour on the other days, see `smooth`). The pseudo-counts `m` are the prior strengths: with
n_c[h] = m_c own calls at an hour, the contact's own rate and the segment's weigh the same. Unrolled, the estimate is
a weighted mean of the raw rates, with weights that add up to 1 (`Blend`):

    p_c = w_c * a_c/n_c + w_s * a_s/n_s + w_w * a_w/n_w + w_0 * p0
    w_c = n_c / (n_c + m_c);  w_s = (1 - w_c) * n_s / (n_s + m_s)
    w_w = (1 - w_c - w_s) * n_w / (n_w + m_w);  w_0 = 1 - w_c - w_s - w_w
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

HOURS = 168
Array = npt.NDArray[np.float64]

# Prior strengths (pseudo-calls) and smoothing: tuned on bench/call_time_eval.py.
WORKSPACE_STRENGTH = 2.0
SEGMENT_STRENGTH = 8.0
CONTACT_STRENGTH = 4.0
NEIGHBOUR_WEIGHT = 0.3  # each of the hour before and after lends this share of its calls
SAME_HOUR_WEIGHT = 0.15  # the same hour on each of the six other days lends this share


@dataclass(frozen=True)
class Priors:
    workspace: float = WORKSPACE_STRENGTH
    segment: float = SEGMENT_STRENGTH
    contact: float = CONTACT_STRENGTH
    neighbour_weight: float = NEIGHBOUR_WEIGHT
    same_hour_weight: float = SAME_HOUR_WEIGHT


def hour_of_week(moment: datetime, tz: ZoneInfo) -> int:
    local = moment.astimezone(tz)
    return local.weekday() * 24 + local.hour


@dataclass
class Counts:
    """Answered and total calls per hour-of-week."""

    answered: Array = field(default_factory=lambda: np.zeros(HOURS))
    total: Array = field(default_factory=lambda: np.zeros(HOURS))

    def add(self, hour: int, answered: bool, weight: float = 1.0) -> None:
        self.total[hour] += weight
        if answered:
            self.answered[hour] += weight

    @classmethod
    def of(
        cls, hours: Sequence[int] | npt.NDArray[np.int64], answered: Sequence[bool] | npt.NDArray[np.bool_]
    ) -> Counts:
        h = np.asarray(hours, dtype=np.int64)
        a = np.asarray(answered, dtype=bool)
        return cls(
            answered=np.bincount(h[a], minlength=HOURS).astype(np.float64),
            total=np.bincount(h, minlength=HOURS).astype(np.float64),
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.answered + other.answered, self.total + other.total)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.answered - other.answered, self.total - other.total)


def smooth(
    values: Array, neighbour_weight: float = NEIGHBOUR_WEIGHT, same_hour_weight: float = SAME_HOUR_WEIGHT
) -> Array:
    """Each hour plus `neighbour_weight` of the hour before and after (the week wraps round) plus `same_hour_weight`
    of the same hour on each of the other six days. Applied to answered and total counts alike, so a rate is only
    moved where an hour has few calls of its own."""
    out = values + neighbour_weight * (np.roll(values, 1) + np.roll(values, -1))
    if same_hour_weight:
        by_day = values.reshape(7, 24)
        others = by_day.sum(axis=0, keepdims=True) - by_day
        out = out + same_hour_weight * others.reshape(HOURS)
    return out


def _rate(answered: Array, total: Array) -> Array:
    return np.divide(answered, total, out=np.zeros_like(total), where=total > 0)


@dataclass(frozen=True)
class Blend:
    """The estimate per hour, with each level's smoothed evidence and its weight in the estimate."""

    probability: Array
    base_rate: float
    contact: Counts
    segment: Counts
    workspace: Counts
    weight_contact: Array
    weight_segment: Array
    weight_workspace: Array
    weight_base: Array


def estimate(contact: Counts, segment: Counts, workspace: Counts, priors: Priors = Priors()) -> Blend:
    """The hierarchical estimate (module docstring). `segment` and `workspace` include the contact's own calls (they
    are the calls of every contact of the segment / of the type): each level is what it is, the shrinkage does the
    rest. Returns the probability of an answer per hour-of-week, with the weights that explain it."""
    s = {"neighbour_weight": priors.neighbour_weight, "same_hour_weight": priors.same_hour_weight}
    cw = Counts(smooth(workspace.answered, **s), smooth(workspace.total, **s))
    cs = Counts(smooth(segment.answered, **s), smooth(segment.total, **s))
    cc = Counts(smooth(contact.answered, **s), smooth(contact.total, **s))
    all_answered, all_total = float(workspace.answered.sum()), float(workspace.total.sum())
    base = (all_answered + 1.0) / (all_total + 2.0)
    p_w = (priors.workspace * base + cw.answered) / (priors.workspace + cw.total)
    p_s = (priors.segment * p_w + cs.answered) / (priors.segment + cs.total)
    p_c = (priors.contact * p_s + cc.answered) / (priors.contact + cc.total)
    w_c = cc.total / (cc.total + priors.contact)
    w_s = (1 - w_c) * cs.total / (cs.total + priors.segment)
    w_w = (1 - w_c - w_s) * cw.total / (cw.total + priors.workspace)
    w_0 = 1 - w_c - w_s - w_w
    return Blend(p_c, base, cc, cs, cw, w_c, w_s, w_w, w_0)


def raw_rates(blend: Blend) -> tuple[Array, Array, Array]:
    """The smoothed raw answer rate of each level per hour (0 where a level has no calls: its weight is 0 there)."""
    return (
        _rate(blend.contact.answered, blend.contact.total),
        _rate(blend.segment.answered, blend.segment.total),
        _rate(blend.workspace.answered, blend.workspace.total),
    )


# --- slots ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    hour: int  # hour-of-week in the contact's time zone
    probability: float


def candidate_slots(
    working: Sequence[tuple[datetime, datetime]],
    tz: ZoneInfo,
    probability: Array,
    *,
    now: datetime,
    until: datetime,
    min_minutes: int = 15,
) -> list[Slot]:
    """Every hour of the contact's local clock from `now` to `until` that overlaps the caller's working intervals
    (UTC) for at least `min_minutes`, cut to the overlap, in time order. A slot already begun starts at `now`."""
    local = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    start = local.astimezone(UTC)
    slots: list[Slot] = []
    intervals = sorted(working)
    index = 0
    need = timedelta(minutes=min_minutes)
    while start < until and index < len(intervals):
        end = start + timedelta(hours=1)
        while index < len(intervals) and intervals[index][1] <= start:
            index += 1
        position = index
        while position < len(intervals) and intervals[position][0] < end:
            begins = max(start, intervals[position][0], now)
            ends = min(end, intervals[position][1], until)
            if ends - begins >= need:
                hour = hour_of_week(start, tz)
                slots.append(Slot(begins, ends, hour, float(probability[hour])))
                break  # one slot per local hour (its first working part)
            position += 1
        start = end
    return slots


def rank(slots: Sequence[Slot]) -> list[Slot]:
    """Best first; among equal estimates, the earlier."""
    return sorted(slots, key=lambda s: (-round(s.probability, 9), s.starts_at))
