"""The arithmetic of analytics, on plain numbers: histogram buckets and their percentiles, ROC AUC from score counts,
the anomaly band (median ± k·MAD). No database here; the SQL side mirrors `bucket_of`."""

import math
from collections.abc import Iterable, Mapping, Sequence

BUCKETS_PER_DOUBLING = 8
MAD_TO_SIGMA = 1.4826  # MAD × this estimates the standard deviation of normal noise


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration, as the `analytics_bucket` SQL function computes it."""
    if seconds < 1:
        return 0
    return 1 + math.floor(BUCKETS_PER_DOUBLING * math.log2(seconds))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) seconds of a bucket."""
    if bucket <= 0:
        return 0.0, 1.0
    return 2 ** ((bucket - 1) / BUCKETS_PER_DOUBLING), 2 ** (bucket / BUCKETS_PER_DOUBLING)


def histogram_percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of durations kept as bucket counts: found in its bucket, then placed inside it on a
    log scale by the share of the bucket's count below it. Exact to within half a bucket (4.5 %)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    target = q * total
    below = 0
    for bucket in sorted(counts):
        count = counts[bucket]
        if count <= 0:
            continue
        if below + count >= target:
            low, high = bucket_bounds(bucket)
            share = min(1.0, max(0.0, (target - below) / count))
            if bucket <= 0:
                return low + (high - low) * share
            return float(low * (high / low) ** share)
        below += count
    return bucket_bounds(max(counts))[1]


def histogram_cdf(counts: Mapping[int, int], seconds: float) -> float | None:
    """The share of durations at most `seconds` (interpolated inside its bucket like the percentiles)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    here = bucket_of(max(seconds, 0.0))
    below: float = sum(c for b, c in counts.items() if b < here)
    low, high = bucket_bounds(here)
    linear = here <= 0  # the first bucket, [0, 1) s, is linear; the others are spread on a log scale
    share = (seconds - low) / (high - low) if linear else math.log(max(seconds, low) / low) / math.log(high / low)
    below += counts.get(here, 0) * min(1.0, max(0.0, share))
    return min(1.0, below / total)


def roc_auc(wins: Mapping[int, int], losses: Mapping[int, int]) -> float | None:
    """ROC AUC of scores against outcomes, from how many won and lost elements had each score: the chance that a
    won element outscored a lost one (ties count half). None without both outcomes."""
    total_wins = sum(wins.values())
    total_losses = sum(losses.values())
    if total_wins == 0 or total_losses == 0:
        return None
    losses_below = 0
    pairs = 0.0
    for score in sorted(set(wins) | set(losses)):
        won, lost = wins.get(score, 0), losses.get(score, 0)
        pairs += won * (losses_below + 0.5 * lost)
        losses_below += lost
    return pairs / (total_wins * total_losses)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def anomaly_band(history: Sequence[float], k: float) -> tuple[float, float] | None:
    """median ± k·MAD (scaled to a standard deviation) of the past values; None with fewer than three.

    A flat history (MAD 0) still gets a band: at least 1 % of the median's size, so exact repeats do not make any
    change at all an anomaly."""
    if len(history) < 3:
        return None
    center = median(history)
    spread = median([abs(v - center) for v in history]) * MAD_TO_SIGMA
    spread = max(spread, abs(center) * 0.01, 1e-9)
    return center - k * spread, center + k * spread


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def merge_counts(parts: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, 0) + value
    return merged
