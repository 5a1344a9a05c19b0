"""Best time to call, evaluated on generated histories with a KNOWN answer pattern (issue 17, item 1).

Runs purely on the estimator functions (app/calltime/estimator.py) that the service calls: the same `estimate`,
`candidate_slots` and `rank`, over working intervals from the calendar's own `working_intervals()`; only the database
reads are left out (the per-hour counts are built here as the service builds them from the call rows).

The truth: B2B contacts answer on weekdays 10-12 and 14-16, B2C contacts in the evening 18-20 (and a little on
weekend days); each contact has its own shift of those hours (-2..+2 h), its own responsiveness, and its own time
zone. Each contact has 5-30 past calls at random working hours (Mon-Sat 08-21 local), answered with the true
probability. Then, from a random "now" in the following week, each strategy picks when to call next within the
calling hours, and the held-out future call at that slot is scored by its TRUE answer probability (and by one
simulated outcome):

- ours: the top slot of the hierarchical estimate (contact → segment `client_type` → workspace);
- call now: the next working hour;
- same hour for everyone: the single best workspace-wide hour-of-week (learned from all calls), its next occurrence;
- oracle: the best slot by the true probability (the ceiling).

    python3 bench/call_time_eval.py [--contacts 3000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from app.calendar import hours
from app.calltime import estimator

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/Moscow", "Asia/Kolkata")
CALLING_WEEK = {d: ([(8 * 60, 21 * 60)] if d != "sun" else []) for d in hours.DAYS}
HISTORY_START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday: 12 weeks of history
HISTORY_WEEKS = 12
NOW_START = HISTORY_START + timedelta(weeks=HISTORY_WEEKS)


@dataclass
class Contact:
    kind: str  # b2b / b2c
    zone: ZoneInfo
    truth: np.ndarray  # true answer probability per local hour-of-week


def true_pattern(kind: str, shift: int, responsiveness: float) -> np.ndarray:
    p = np.full((7, 24), 0.04)
    if kind == "b2b":
        p[:5, 8:18] = 0.18
        for start, end in ((10, 12), (14, 16)):
            p[:5, start + shift : end + shift] = 0.72
    else:
        p[:5, 9:17] = 0.08
        p[5:, 10:18] = 0.3
        p[:, 18 + shift : 20 + shift] = 0.68
    return np.clip(p.reshape(estimator.HOURS) * responsiveness, 0.01, 0.97)


def calling_hours(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    return hours.working_intervals(CALLING_WEEK, zone, start, end)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    defaults = estimator.Priors()
    parser.add_argument("--segment-strength", type=float, default=defaults.segment)
    parser.add_argument("--contact-strength", type=float, default=defaults.contact)
    parser.add_argument("--neighbour-weight", type=float, default=defaults.neighbour_weight)
    parser.add_argument("--same-hour-weight", type=float, default=defaults.same_hour_weight)
    args = parser.parse_args()
    priors = estimator.Priors(
        segment=args.segment_strength,
        contact=args.contact_strength,
        neighbour_weight=args.neighbour_weight,
        same_hour_weight=args.same_hour_weight,
    )
    rng = np.random.default_rng(args.seed)
    began = time.monotonic()

    contacts = [
        Contact(
            kind=(kind := "b2b" if rng.random() < 0.5 else "b2c"),
            zone=ZoneInfo(str(rng.choice(ZONES))),
            truth=true_pattern(kind, int(rng.integers(-2, 3)), float(rng.uniform(0.6, 1.25))),
        )
        for _ in range(args.contacts)
    ]

    # --- history: 5-30 calls each, at random calling hours over 12 weeks, answered with the true probability
    history_end = HISTORY_START + timedelta(weeks=HISTORY_WEEKS)
    own: list[estimator.Counts] = []
    calls = 0
    for contact in contacts:
        intervals = calling_hours(contact.zone, HISTORY_START, history_end)
        lengths = np.array([(e - s).total_seconds() for s, e in intervals])
        picks = rng.choice(len(intervals), size=int(rng.integers(5, 31)), p=lengths / lengths.sum())
        when = [intervals[i][0] + timedelta(seconds=float(rng.uniform(0, lengths[i]))) for i in picks]
        h = np.array([estimator.hour_of_week(w, contact.zone) for w in when])
        answered = rng.random(len(h)) < contact.truth[h]
        own.append(estimator.Counts.of(h, answered))
        calls += len(h)
    workspace = estimator.Counts()
    segments = {"b2b": estimator.Counts(), "b2c": estimator.Counts()}
    for contact, counts in zip(contacts, own, strict=True):
        workspace = workspace + counts
        segments[contact.kind] = segments[contact.kind] + counts
    learned = time.monotonic() - began

    # "Same hour for everyone": the best hour-of-week of the whole workspace (with every call pooled).
    pooled = estimator.estimate(estimator.Counts(), estimator.Counts(), workspace, priors).probability
    allowed = np.zeros(estimator.HOURS, dtype=bool)
    for day in range(6):
        allowed[day * 24 + 8 : day * 24 + 21] = True
    same_hour = int(np.argmax(np.where(allowed, pooled, -1)))

    results: dict[str, list[float]] = {"ours": [], "call now": [], "same hour for everyone": [], "oracle": []}
    for contact, counts in zip(contacts, own, strict=True):
        now = NOW_START + timedelta(seconds=float(rng.uniform(0, 7 * 86400)))
        until = now + timedelta(days=7)
        blend = estimator.estimate(counts, segments[contact.kind], workspace, priors)
        working = calling_hours(contact.zone, now, until)
        slots = estimator.candidate_slots(working, contact.zone, blend.probability, now=now, until=until)
        ranked = estimator.rank(slots)
        results["ours"].append(contact.truth[ranked[0].hour])
        results["call now"].append(contact.truth[slots[0].hour])
        same = next(s for s in slots if s.hour == same_hour)
        results["same hour for everyone"].append(contact.truth[same.hour])
        results["oracle"].append(max(contact.truth[s.hour] for s in slots))

    print(
        f"{args.contacts} contacts (B2B {sum(c.kind == 'b2b' for c in contacts)}, "
        f"B2C {sum(c.kind == 'b2c' for c in contacts)}), {calls} past calls; seed {args.seed}"
    )
    print(f"same hour for everyone: {hours.DAYS[same_hour // 24]} {same_hour % 24:02d}:00 local")
    print()
    print(f"{'strategy':<26}{'true P(answer)':>16}{'simulated answer rate':>24}")
    for name, values in results.items():
        p = np.asarray(values)
        simulated = float((rng.random(len(p)) < p).mean())
        print(f"{name:<26}{p.mean():>16.3f}{simulated:>24.3f}")
    ours = np.mean(results["ours"])
    print()
    print(
        f"ours vs call now: {ours / np.mean(results['call now']):.2f}x; "
        f"vs same hour for everyone: {ours / np.mean(results['same hour for everyone']):.2f}x "
        f"(learning {learned:.1f} s, total {time.monotonic() - began:.1f} s)"
    )
    if not ours > max(np.mean(results["call now"]), np.mean(results["same hour for everyone"])):
        raise SystemExit("the top slot does not beat both baselines")


if __name__ == "__main__":
    main()
