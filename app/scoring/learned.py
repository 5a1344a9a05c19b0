"""Learned scoring: an L2-regularised logistic regression in numpy, or boosted trees (app.scoring.trees), stored as
plain data; training fits both and keeps the trees only when they win on the hold-out.

Encodings (learned from the training split only):
- categorical: one column per category seen at least `min_category_count` times, one for rarer values (`other`)
  and one for missing;
- numeric: a standardised value (clipped to ±5, 0 when missing), a missing indicator and one-hot quantile bins;
- boolean: the value (0/1) and a missing indicator.

The model (`params`) is JSON: the feature encodings, one coefficient and one training mean per column, the intercept.
`predict` rebuilds the columns from those, so stored coefficients reproduce every score. Contributions are
coef · (x − training mean) summed per feature; baseline + Σ contributions = logit(p) exactly.
"""

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from app.scoring.trees import TreeOptions

Row = dict[str, Any]
FloatArray = NDArray[np.float64]

MISSING = "__missing__"
OTHER = "__other__"
Z_CLIP = 5.0


class TrainingError(Exception):
    """The data cannot train a model (too few outcomes, one class only…); the message is shown to the user."""


def _items(value: Any) -> list[Any]:
    if value is None or value == "" or value == []:
        return []
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _bool(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return None


# --- encodings -------------------------------------------------------------------------------------------------


def fit_encoding(code: str, kind: str, values: list[Any], *, bins: int, min_count: int) -> dict[str, Any]:
    """Learn how to turn one feature into columns, from the training values."""
    if kind == "categorical":
        counts = Counter(str(item) for value in values for item in _items(value))
        categories = sorted(c for c, n in counts.items() if n >= min_count)
        return {"code": code, "kind": kind, "categories": categories}
    if kind == "numeric":
        numbers = np.array([n for n in (_number(v) for v in values) if n is not None], dtype=np.float64)
        mean = float(numbers.mean()) if numbers.size else 0.0
        std = float(numbers.std()) if numbers.size else 1.0
        edges: list[float] = []
        if bins > 1 and numbers.size:
            quantiles = np.quantile(numbers, [i / bins for i in range(1, bins)])
            edges = sorted({float(q) for q in quantiles})
        return {"code": code, "kind": kind, "mean": mean, "std": std if std > 0 else 1.0, "edges": edges}
    return {"code": code, "kind": "boolean"}


def column_names(encoding: dict[str, Any]) -> list[str]:
    code = encoding["code"]
    if encoding["kind"] == "categorical":
        return [*(f"{code}={c}" for c in encoding["categories"]), f"{code}={OTHER}", f"{code}={MISSING}"]
    if encoding["kind"] == "numeric":
        edges = encoding["edges"]
        names = [f"{code}", f"{code}={MISSING}"]
        if edges:
            names += [f"{code}#bin{i}" for i in range(len(edges) + 1)]
        return names
    return [code, f"{code}={MISSING}"]


def _encode_one(encoding: dict[str, Any], values: list[Any]) -> FloatArray:
    n = len(values)
    width = len(column_names(encoding))
    out = np.zeros((n, width), dtype=np.float64)
    kind = encoding["kind"]
    if kind == "categorical":
        index = {c: i for i, c in enumerate(encoding["categories"])}
        other, missing = len(index), len(index) + 1
        for row, value in enumerate(values):
            items = _items(value)
            if not items:
                out[row, missing] = 1.0
            for item in items:
                out[row, index.get(str(item), other)] = 1.0
        return out
    if kind == "numeric":
        numbers = np.array([_number(v) if _number(v) is not None else np.nan for v in values], dtype=np.float64)
        present = ~np.isnan(numbers)
        z = np.clip((numbers - encoding["mean"]) / encoding["std"], -Z_CLIP, Z_CLIP)
        out[:, 0] = np.where(present, z, 0.0)
        out[:, 1] = (~present).astype(np.float64)
        edges = encoding["edges"]
        if edges:
            which = np.searchsorted(np.array(edges), np.where(present, numbers, 0.0), side="right")
            rows = np.nonzero(present)[0]
            out[rows, 2 + which[rows]] = 1.0
        return out
    for row, value in enumerate(values):
        flag = _bool(value)
        if flag is None:
            out[row, 1] = 1.0
        else:
            out[row, 0] = flag
    return out


def design_matrix(encodings: list[dict[str, Any]], rows: list[Row]) -> tuple[FloatArray, list[int]]:
    """The columns for every row, and for each column the index of the feature it came from."""
    blocks = []
    owners: list[int] = []
    for position, encoding in enumerate(encodings):
        block = _encode_one(encoding, [row.get(encoding["code"]) for row in rows])
        blocks.append(block)
        owners.extend([position] * block.shape[1])
    return (np.hstack(blocks) if blocks else np.zeros((len(rows), 0))), owners


# --- fitting ---------------------------------------------------------------------------------------------------


def _sigmoid(z: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))
    return result


def fit_logistic(x: FloatArray, y: FloatArray, *, l2: float, max_iter: int = 100) -> tuple[float, FloatArray]:
    """Newton's method (IRLS) on the L2-penalised log loss; the intercept is not penalised."""
    n, p = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    weights = np.zeros(p + 1)
    base = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    weights[0] = math.log(base / (1 - base))
    penalty = np.full(p + 1, l2)
    penalty[0] = 0.0
    for _ in range(max_iter):
        prob = _sigmoid(design @ weights)
        gradient = design.T @ (prob - y) + penalty * weights
        curvature = prob * (1 - prob)
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return float(weights[0]), weights[1:]


# --- metrics ---------------------------------------------------------------------------------------------------


def roc_auc(y: FloatArray, p: FloatArray) -> float | None:
    """The Mann–Whitney statistic, with tied scores counted half."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def log_loss(y: FloatArray, p: FloatArray) -> float:
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))


def calibration(y: FloatArray, p: FloatArray, groups: int = 10) -> list[dict[str, Any]]:
    """Hold-out elements in ten groups by predicted probability: mean prediction against the observed rate."""
    order = np.argsort(p, kind="mergesort")
    out = []
    for decile, chunk in enumerate(np.array_split(order, groups), start=1):
        if chunk.size == 0:
            continue
        out.append(
            {
                "decile": decile,
                "count": int(chunk.size),
                "mean_predicted": round(float(p[chunk].mean()), 4),
                "observed_rate": round(float(y[chunk].mean()), 4),
            }
        )
    return out


def split(
    y: FloatArray, fraction: float, seed: int, *, groups: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A stratified train/hold-out split of row indexes. With `groups` (rows of one group share their label, e.g. the
    snapshots of one deal), whole groups go to one side, stratified by the groups' labels."""
    if groups is not None:
        ids, first = np.unique(groups, return_index=True)
        _, group_holdout = split(y[first], fraction, seed)
        in_holdout = np.isin(groups, ids[group_holdout])
        return np.nonzero(~in_holdout)[0].astype(np.int64), np.nonzero(in_holdout)[0].astype(np.int64)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    holdout: list[int] = []
    for label in (0.0, 1.0):
        members = np.nonzero(y == label)[0]
        rng.shuffle(members)
        cut = round(len(members) * fraction)
        holdout.extend(members[:cut].tolist())
        train.extend(members[cut:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(holdout), dtype=np.int64)


# --- the model as data -----------------------------------------------------------------------------------------

LOGISTIC = "logistic_regression_l2"
# `auto` keeps boosted trees only when they beat the logistic model on the hold-out by at least this much ROC AUC:
# with no clear gain the simpler, smoother model stays.
TREES_MIN_GAIN = 0.002


@dataclass
class Trained:
    params: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Logistic:
    """A stored logistic model, ready to evaluate."""

    params: dict[str, Any]

    def logits(self, rows: list[Row]) -> FloatArray:
        logits, _, _ = _logits(self.params, rows)
        return logits

    def proba(self, rows: list[Row]) -> FloatArray:
        return _sigmoid(self.logits(rows)) if rows else np.zeros(0)

    def explain(self, row: Row) -> tuple[float, float, list[tuple[str, Any, float]]]:
        return _explain_logistic(self.params, row)


class Predictor(Protocol):
    def logits(self, rows: list[Row]) -> FloatArray: ...
    def proba(self, rows: list[Row]) -> FloatArray: ...
    def explain(self, row: Row) -> tuple[float, float, list[tuple[str, Any, float]]]: ...


def compile_params(params: dict[str, Any]) -> Predictor:
    """The stored model (logistic or boosted trees) as an object that scores rows; build it once per version."""
    from app.scoring import trees  # trees builds on this module's encodings

    if params.get("algorithm") == trees.ALGORITHM:
        return trees.Forest.from_params(params)
    return Logistic(params)


MIN_PER_CLASS = 5


def _metrics(y: FloatArray, p: FloatArray) -> dict[str, Any]:
    auc = roc_auc(y, p)
    return {
        "roc_auc": round(auc, 4) if auc is not None else None,
        "log_loss": round(log_loss(y, p), 4),
        "brier": round(brier(y, p), 4),
    }


def brier(y: FloatArray, p: FloatArray) -> float:
    return float(np.mean((p - y) ** 2)) if len(y) else 0.0


def category_rate_baseline(
    rows: list[Row], y: FloatArray, train_idx: NDArray[np.int64], holdout_idx: NDArray[np.int64], code: str
) -> FloatArray:
    """The simple baseline for `code` (e.g. the stage): each category's success rate among the training rows,
    the overall rate for a category not seen there; predicted for the hold-out rows."""
    overall = float(y[train_idx].mean())
    totals: dict[str, list[float]] = {}
    for i in train_idx:
        totals.setdefault(str(rows[i].get(code)), []).append(float(y[i]))
    rates = {key: float(np.mean(values)) for key, values in totals.items()}
    return np.array([rates.get(str(rows[i].get(code)), overall) for i in holdout_idx], dtype=np.float64)


def train(
    rows: list[Row],
    labels: list[int],
    features: list[tuple[str, str]],
    *,
    holdout_fraction: float,
    l2: float,
    bins: int,
    min_category_count: int,
    seed: int,
    algorithm: str = "auto",
    tree_options: "TreeOptions | None" = None,
    groups: list[int] | None = None,
    baseline_feature: str | None = None,
) -> Trained:
    """Fit on a stratified training split, measure on the hold-out split. `features` are (code, kind) pairs.

    `algorithm`: `logistic`, `boosted_trees`, or `auto` (both are fitted on the same split; the trees are kept only
    when they beat the logistic model's hold-out ROC AUC by TREES_MIN_GAIN). `groups`: rows that belong together
    (snapshots of one element) stay on one side of the split. `baseline_feature`: also measure the per-category
    success rate of that feature (e.g. the stage) on the same hold-out, as the simple baseline to beat."""
    from app.scoring import trees

    y = np.array(labels, dtype=np.float64)
    group_ids = np.array(groups, dtype=np.int64) if groups is not None else None
    positives, negatives = _class_counts(y, group_ids)
    if positives < MIN_PER_CLASS or negatives < MIN_PER_CLASS:
        raise TrainingError(
            f"needs at least {MIN_PER_CLASS} elements in success stages and {MIN_PER_CLASS} in failure stages "
            f"(has {positives} and {negatives})"
        )
    wants_trees = algorithm in ("auto", "boosted_trees")
    if algorithm == "boosted_trees" and not trees.installed():
        raise TrainingError("boosted trees are trained with LightGBM, which is not installed here")
    train_idx, holdout_idx = split(y, holdout_fraction, seed, groups=group_ids)
    train_rows = [rows[i] for i in train_idx]
    holdout_rows = [rows[i] for i in holdout_idx]
    y_train, y_holdout = y[train_idx], y[holdout_idx]

    candidates: list[tuple[dict[str, Any], FloatArray, FloatArray]] = []  # params, train and hold-out predictions
    if algorithm in ("auto", "logistic"):
        params = _fit_logistic_params(train_rows, y_train, features, l2=l2, bins=bins, min_count=min_category_count)
        model = Logistic(params)
        candidates.append((params, model.proba(train_rows), model.proba(holdout_rows)))
    skipped = None
    if wants_trees and trees.installed():
        encodings = [
            fit_encoding(code, kind, [r.get(code) for r in train_rows], bins=0, min_count=min_category_count)
            for code, kind in features
        ]
        x_train, _ = trees.tree_matrix(encodings, train_rows)
        options = tree_options or trees.TreeOptions(num_leaves=7, learning_rate=0.05, max_trees=500, seed=seed)
        train_groups = group_ids[train_idx] if group_ids is not None else None
        fitted, depth = trees.fit(x_train, y_train, train_groups, options)
        params = trees.params_for(encodings, fitted, depth)
        forest = trees.Forest.from_params(params)
        candidates.append((params, forest.proba(train_rows), forest.proba(holdout_rows)))
    elif wants_trees:
        skipped = "boosted trees: LightGBM is not installed here"

    scored = [(params, p_train, p_holdout, _metrics(y_holdout, p_holdout)) for params, p_train, p_holdout in candidates]
    chosen = scored[0]
    if len(scored) == 2 and (scored[1][3]["roc_auc"] or 0.0) > (scored[0][3]["roc_auc"] or 0.0) + TREES_MIN_GAIN:
        chosen = scored[1]
    params, p_train, p_holdout, holdout_metrics = chosen
    metrics: dict[str, Any] = {
        **holdout_metrics,
        "algorithm": params["algorithm"],
        "calibration": calibration(y_holdout, p_holdout),
        "train_size": len(train_idx),
        "holdout_size": len(holdout_idx),
        "base_rate": round(float(y.mean()), 4),
        "train_roc_auc": _round(roc_auc(y_train, p_train)),
        "candidates": [{"algorithm": c[0]["algorithm"], **c[3], "chosen": c is chosen} for c in scored],
    }
    if skipped:
        metrics["note"] = skipped
    if group_ids is not None:
        metrics["holdout_elements"] = len(np.unique(group_ids[holdout_idx]))
    if baseline_feature is not None:
        p_baseline = category_rate_baseline(rows, y, train_idx, holdout_idx, baseline_feature)
        metrics["baseline"] = {
            "name": f"{baseline_feature} success rate",
            **_metrics(y_holdout, p_baseline),
            "calibration": calibration(y_holdout, p_baseline),
        }
    return Trained(params=params, metrics=metrics)


def _class_counts(y: FloatArray, groups: NDArray[np.int64] | None) -> tuple[int, int]:
    """Successes and failures, counted per element when rows are snapshots."""
    if groups is not None:
        _, first = np.unique(groups, return_index=True)
        y = y[first]
    return int(y.sum()), int(len(y) - y.sum())


def _fit_logistic_params(
    rows: list[Row], y: FloatArray, features: list[tuple[str, str]], *, l2: float, bins: int, min_count: int
) -> dict[str, Any]:
    encodings = [
        fit_encoding(code, kind, [r.get(code) for r in rows], bins=bins, min_count=min_count) for code, kind in features
    ]
    x_train, _ = design_matrix(encodings, rows)
    intercept, coefs = fit_logistic(x_train, y, l2=l2)
    means = x_train.mean(axis=0)
    return {
        "algorithm": LOGISTIC,
        "intercept": intercept,
        "encodings": [
            {**encoding, "columns": column_names(encoding)}
            for encoding in encodings  # the column names document the coefficients below
        ],
        "coefficients": [float(c) for c in coefs],
        "column_means": [float(m) for m in means],
    }


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _logits(params: dict[str, Any], rows: list[Row]) -> tuple[FloatArray, FloatArray, list[int]]:
    x, owners = design_matrix(params["encodings"], rows)
    coefs = np.array(params["coefficients"], dtype=np.float64)
    return params["intercept"] + x @ coefs, x, owners


def predict_proba(params: dict[str, Any], rows: list[Row]) -> FloatArray:
    """Probabilities from a stored model (either algorithm). Compiles it on every call: the engine caches instead."""
    return compile_params(params).proba(rows)


def probability_to_score(probability: float) -> int:
    return max(1, min(100, round(probability * 100)))


def explain(params: dict[str, Any], row: Row) -> tuple[float, float, list[tuple[str, Any, float]]]:
    """(probability, baseline log-odds, [(feature, value, contribution in log-odds)]) for one row."""
    return compile_params(params).explain(row)


def _explain_logistic(params: dict[str, Any], row: Row) -> tuple[float, float, list[tuple[str, Any, float]]]:
    logits, x, owners = _logits(params, [row])
    coefs = np.array(params["coefficients"], dtype=np.float64)
    means = np.array(params["column_means"], dtype=np.float64)
    centred = coefs * (x[0] - means)
    baseline = float(params["intercept"] + coefs @ means)
    contributions: list[tuple[str, Any, float]] = []
    for position, encoding in enumerate(params["encodings"]):
        mask = np.array([owner == position for owner in owners], dtype=bool)
        contributions.append((encoding["code"], row.get(encoding["code"]), float(centred[mask].sum())))
    contributions.sort(key=lambda item: -abs(item[2]))
    return float(_sigmoid(logits)[0]), baseline, contributions
