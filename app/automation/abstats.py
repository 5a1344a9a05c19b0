"""The arithmetic of A/B variants, without a database: who gets which variant, the posteriors, P(best), promotion.

- Assignment: sha256(rule id, element id) -> a point in [0, 1) -> the variant whose cumulative weight covers it.
  Stable across processes and machines (not Python's `hash()`), so a retry or another worker picks the same variant.
- `success` metric: each variant's success rate has the Beta(1 + successes, 1 + failures) posterior (a uniform prior).
- `time_to_close` metric: closing is an exponential process with hazard λ per day; with k closes over an exposure of
  T days (time to close of the closed ones plus time so far of the open ones: censored), λ has the Gamma(1 + k, T)
  posterior (a flat prior). A higher λ closes faster.
- The posteriors are evaluated exactly on a grid (no sampling, so the numbers are the same on every read): credible
  intervals from the grid's CDF, P(best) = Σ_x p_i(x) Π_{j≠i} P(X_j < x) (ties split evenly).
- Promotion: one variant's P(best) >= threshold while every variant has at least `min_sample` decided outcomes.
"""

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = 4096
# How far around a posterior's mean its grid reaches, in standard deviations.
SPAN = 12.0


def bucket(rule_id: uuid.UUID | str, element_id: uuid.UUID | str) -> float:
    """A point in [0, 1) fixed by the pair: the first 8 bytes of sha256("rule:element") over 2**64."""
    digest = hashlib.sha256(f"{rule_id}:{element_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(weights: Sequence[float], point: float) -> int:
    """The index of the variant whose share of the cumulative weights covers `point`."""
    total = float(sum(weights))
    edge = 0.0
    for index, weight in enumerate(weights):
        edge += weight / total
        if point < edge:
            return index
    return len(weights) - 1  # rounding at the top end


@dataclass(frozen=True)
class Posterior:
    """A posterior as (shape a, rate-or-beta b) of a Beta(a, b) or a Gamma(a, b) (shape, rate)."""

    kind: str  # "beta" | "gamma"
    a: float
    b: float

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b) if self.kind == "beta" else self.a / self.b

    @property
    def sd(self) -> float:
        if self.kind == "beta":
            n = self.a + self.b
            return math.sqrt(self.a * self.b / (n * n * (n + 1)))
        return math.sqrt(self.a) / self.b

    def span(self) -> tuple[float, float]:
        low, high = self.mean - SPAN * self.sd, self.mean + SPAN * self.sd
        if self.kind == "beta":
            return max(low, 0.0), min(high, 1.0)
        return max(low, 0.0), high

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """Up to a constant (each grid is normalised)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (self.a - 1) * np.log(x) if self.a != 1 else np.zeros_like(x)
            if self.kind == "beta":
                out = out + ((self.b - 1) * np.log1p(-x) if self.b != 1 else 0.0)
            else:
                out = out - self.b * x
        return np.where(np.isfinite(out), out, -np.inf)


def beta_posterior(successes: int, failures: int) -> Posterior:
    return Posterior("beta", 1.0 + successes, 1.0 + failures)


def gamma_posterior(closes: int, exposure_days: float) -> Posterior:
    # A floor on the exposure keeps the posterior proper before anything was observed.
    return Posterior("gamma", 1.0 + closes, max(exposure_days, 1e-6))


def _masses(posteriors: Sequence[Posterior], grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The common grid's midpoints and each posterior's probability mass on its cells (rows sum to 1)."""
    spans = [p.span() for p in posteriors]
    low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    if high <= low:
        high = low + 1e-9
    width = (high - low) / grid
    x = low + (np.arange(grid) + 0.5) * width
    masses = np.empty((len(posteriors), grid))
    for row, posterior in enumerate(posteriors):
        log = posterior.log_density(x)
        top = np.max(log)
        dens = np.exp(log - top) if np.isfinite(top) else np.zeros(grid)
        total = dens.sum()
        masses[row] = dens / total if total > 0 else np.full(grid, 1.0 / grid)
    return x, masses


def interval(posterior: Posterior, level: float = 0.95, grid: int = GRID) -> tuple[float, float]:
    """The equal-tailed credible interval."""
    x, masses = _masses([posterior], grid)
    cdf = np.cumsum(masses[0])
    tail = (1 - level) / 2
    return float(np.interp(tail, cdf, x)), float(np.interp(1 - tail, cdf, x))


def prob_best(posteriors: Sequence[Posterior], grid: int = GRID) -> list[float]:
    """P(variant i has the highest value), exactly on the grid; ties within a cell split evenly."""
    if len(posteriors) == 1:
        return [1.0]
    _, masses = _masses(posteriors, grid)
    below = np.cumsum(masses, axis=1) - masses  # P(X_j < cell)
    at_or_half = below + masses / 2  # P(X_j < x) with ties in the cell counted half
    log_others = np.log(np.clip(at_or_half, 1e-300, None))
    total = log_others.sum(axis=0)
    out = []
    for i in range(len(posteriors)):
        others = np.exp(total - log_others[i])
        out.append(float(np.sum(masses[i] * others)))
    norm = sum(out)
    return [p / norm for p in out] if norm > 0 else [1.0 / len(out)] * len(out)


def winner(best: Sequence[float], samples: Sequence[int], *, threshold: float, min_sample: int) -> int | None:
    """The variant to promote: its P(best) reached `threshold` and every variant has `min_sample` outcomes."""
    if not best or min(samples) < min_sample:
        return None
    top = max(range(len(best)), key=lambda i: best[i])
    return top if best[top] >= threshold else None
