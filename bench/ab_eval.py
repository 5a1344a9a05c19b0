"""Evaluate A/B variants of automation rules on simulated experiments with known true success rates.

    python3 -m bench.ab_eval [--reps 200] [--horizon 4000] [--seed 7]

Each repetition is one rule with two variants (weights 50/50) and `horizon` elements arriving one after another.
Every element goes through the service's own functions (app.automation.abstats): its variant is picked by the
sha256 bucket of (rule id, element id) and the cumulative weights; its outcome is drawn with its variant's true
rate. Every `--check-every` elements the promotion rule runs as the worker's check does: Beta(1+s, 1+f) posteriors,
exact P(best), promote when one variant's P(best) >= threshold with every variant at >= min_sample outcomes. After a
promotion every later element gets the winner's actions (its true rate).

Printed per scenario and threshold: how often the true winner is promoted, how often the wrong one (in the A/A case
any promotion is a false one), how often nothing is promoted within the horizon, the median number of elements
until a promotion, and the expected successes over the horizon against the baseline "no experiment" (a fixed 50/50
split for the whole horizon) and the oracle (the better variant from the start).
"""

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass

import numpy as np

from app.automation import abstats

NAMESPACE = uuid.UUID("6a0f3d1c-7b1e-4c55-9d7a-2f6b1c0e9a44")
SCENARIOS = {"A/B 0.20 vs 0.26": (0.20, 0.26), "A/A 0.20 vs 0.20": (0.20, 0.20)}
THRESHOLDS = (0.95, 0.99)


@dataclass
class Outcome:
    promoted: int | None  # the promoted variant's index
    at: int | None  # elements seen when it was promoted
    expected_successes: float


def simulate(
    picks: np.ndarray,
    draws: np.ndarray,
    rates: tuple[float, float],
    *,
    threshold: float,
    min_sample: int,
    check_every: int,
) -> Outcome:
    """One experiment: `picks` are the elements' hash-assigned variants, `draws` their uniform outcome draws."""
    successes, failures = [0, 0], [0, 0]
    expected = 0.0
    for index in range(len(picks)):
        arm = int(picks[index])
        successes[arm] += int(draws[index] < rates[arm])
        failures[arm] += int(draws[index] >= rates[arm])
        expected += rates[arm]
        seen = index + 1
        if seen % check_every:
            continue
        posteriors = [abstats.beta_posterior(successes[i], failures[i]) for i in range(2)]
        samples = [successes[i] + failures[i] for i in range(2)]
        if min(samples) < min_sample:
            continue
        chosen = abstats.winner(abstats.prob_best(posteriors), samples, threshold=threshold, min_sample=min_sample)
        if chosen is not None:
            # From here on every element gets the winner's actions.
            return Outcome(chosen, seen, expected + rates[chosen] * (len(picks) - seen))
    return Outcome(None, None, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=150)
    parser.add_argument("--horizon", type=int, default=4000)
    parser.add_argument("--min-sample", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    # The same rules, elements (so the same hash assignments) and outcome draws for every scenario and threshold.
    reps = []
    for rep in range(args.reps):
        rule_id = uuid.uuid5(NAMESPACE, f"rule:{args.seed}:{rep}")
        picks = np.array(
            [
                abstats.pick([50, 50], abstats.bucket(rule_id, uuid.uuid5(NAMESPACE, f"{args.seed}:{rep}:{n}")))
                for n in range(args.horizon)
            ]
        )
        reps.append((picks, rng.random(args.horizon)))
    share_b = float(np.mean([picks.mean() for picks, _ in reps]))
    print(
        f"A/B variants: {args.reps} simulated experiments per row, {args.horizon} elements each, weights 50/50 "
        f"(hash assignment gave variant B {share_b:.2%}), min_sample {args.min_sample} per variant, "
        f"checked every {args.check_every} elements"
    )
    header = (
        f"{'scenario':<18} {'threshold':>9} {'true winner':>11} {'wrong':>7} {'none':>7} {'median n':>9} "
        f"{'successes':>10} {'50/50':>8} {'oracle':>8} {'gain':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, rates in SCENARIOS.items():
        fixed = args.horizon * (rates[0] + rates[1]) / 2
        oracle = args.horizon * max(rates)
        for threshold in THRESHOLDS:
            outcomes = [
                simulate(
                    picks,
                    draws,
                    rates,
                    threshold=threshold,
                    min_sample=args.min_sample,
                    check_every=args.check_every,
                )
                for picks, draws in reps
            ]
            best = int(np.argmax(rates)) if rates[0] != rates[1] else None
            promoted = [o for o in outcomes if o.promoted is not None]
            right = sum(o.promoted == best for o in promoted) if best is not None else 0
            wrong = len(promoted) - right
            median = statistics.median(o.at for o in promoted if o.at is not None) if promoted else float("nan")
            mean_successes = statistics.fmean(o.expected_successes for o in outcomes)
            print(
                f"{name:<18} {threshold:>9.2f} {right / len(outcomes):>11.1%} {wrong / len(outcomes):>7.1%} "
                f"{(len(outcomes) - len(promoted)) / len(outcomes):>7.1%} {median:>9.0f} {mean_successes:>10.1f} "
                f"{fixed:>8.1f} {oracle:>8.1f} {mean_successes - fixed:>+7.1f}"
            )
    print(
        "true winner / wrong: share of experiments promoting the better / the worse variant (A/A: any promotion is "
        "wrong); none: no promotion within the horizon; median n: elements seen at promotion; successes: expected "
        "successes over the horizon with the experiment; 50/50: the baseline without one (fixed split for the whole "
        "horizon); oracle: the better variant from the start; gain: successes - 50/50"
    )
    print(f"elapsed {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
