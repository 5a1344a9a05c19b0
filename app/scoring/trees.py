"""Boosted trees as plain data, evaluated in numpy; trained with LightGBM where it is installed.

Columns: a categorical feature is one-hot (the logistic model's encoding: categories seen often enough, `other`,
`missing`); a number is its raw value (NaN when missing: each split learns which side missing values take); a boolean
is 1/0 (NaN when missing). Every split is then `x <= threshold` on one column, so a tree is a handful of arrays.

The stored model (`params`) keeps each tree as flat lists indexed by split: column, threshold, which side missing
values take, both children (a child ≥ 0 is a split, a child < 0 is the leaf `~child`), and the split's own value; and
the leaves' values. The forest is padded into 2-D arrays once per model version and walked level by level for every
(row, tree) at once, so a batch is a few dozen numpy operations whatever its size.

Explanations are Saabas's path contributions: walking down, each split credits its column with the change of the
node value it causes (the value of the child taken minus its own). The sum over a tree telescopes from the root's
value to the leaf's, so baseline (Σ root values) + Σ contributions = the model's logit exactly. TreeSHAP would need a
per-row recursive walk at request time; Saabas comes from the same vectorised walk as the prediction.

Only `fit` imports LightGBM: scoring never does.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.scoring import learned

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ALGORITHM = "gradient_boosted_trees"
# LightGBM's missing types, as stored: how a split treats a NaN (and, for `zero`, a 0).
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
_ZERO = 1e-35  # LightGBM's kZeroThreshold


def installed() -> bool:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


# --- columns ---------------------------------------------------------------------------------------------------


def tree_columns(encoding: dict[str, Any]) -> list[str]:
    if encoding["kind"] == "categorical":
        return learned.column_names(encoding)
    return [encoding["code"]]


def tree_matrix(encodings: list[dict[str, Any]], rows: list[learned.Row]) -> tuple[FloatArray, list[int]]:
    """The trees' columns for every row, and for each column the index of the feature it came from."""
    blocks: list[FloatArray] = []
    owners: list[int] = []
    for position, encoding in enumerate(encodings):
        values = [row.get(encoding["code"]) for row in rows]
        if encoding["kind"] == "categorical":
            block = learned._encode_one(encoding, values)
        elif encoding["kind"] == "numeric":
            numbers = [learned._number(v) for v in values]
            block = np.array([[math.nan if n is None else n] for n in numbers], dtype=np.float64).reshape(-1, 1)
        else:
            flags = [learned._bool(v) for v in values]
            block = np.array([[math.nan if f is None else f] for f in flags], dtype=np.float64).reshape(-1, 1)
        blocks.append(block)
        owners.extend([position] * block.shape[1])
    return (np.hstack(blocks) if blocks else np.zeros((len(rows), 0))), owners


# --- the forest as arrays --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forest:
    """A stored model compiled for evaluation. Every tree gets a block of `width` nodes in flat arrays: its splits,
    then its leaves; a leaf is a node that leads to itself, so walking a fixed number of levels needs no masks."""

    params: dict[str, Any]
    column: IntArray  # node -> column it splits on (0 for a leaf)
    threshold: FloatArray
    nan_left: NDArray[np.bool_]  # where a NaN goes
    zero_missing: NDArray[np.bool_]  # LightGBM's `Zero` missing type: 0 goes the default way too
    default_left: NDArray[np.bool_]
    left: IntArray  # node -> node
    right: IntArray
    value: FloatArray  # a split's own value, or a leaf's
    roots: IntArray  # (trees,)
    baseline: float
    owners: IntArray  # column -> feature position
    depth: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Forest":
        trees = params["trees"]
        width = max([len(t["feature"]) + len(t["leaf_value"]) for t in trees] + [1])
        size = len(trees) * width
        column = np.zeros(size, dtype=np.int64)
        threshold = np.zeros(size)
        nan_left = np.zeros(size, dtype=bool)
        zero_missing = np.zeros(size, dtype=bool)
        default_left = np.zeros(size, dtype=bool)
        nodes = np.arange(size, dtype=np.int64)
        left, right = nodes.copy(), nodes.copy()  # padding and leaves lead to themselves
        value = np.zeros(size)
        roots = np.zeros(len(trees), dtype=np.int64)
        for t, tree in enumerate(trees):
            base, splits = t * width, len(tree["feature"])

            def node(ref: int, base: int = base, splits: int = splits) -> int:
                return base + ref if ref >= 0 else base + splits + ~ref

            for i in range(splits):
                kind, goes_left = tree["missing"][i], bool(tree["default_left"][i])
                column[base + i] = tree["feature"][i]
                threshold[base + i] = tree["threshold"][i]
                # LightGBM: a NaN is the default way for the NaN type, else it is read as 0.0 (then for the Zero
                # type 0 is the default way, for None it is compared with the threshold).
                nan_left[base + i] = goes_left if kind != MISSING_NONE else tree["threshold"][i] >= 0.0
                zero_missing[base + i] = kind == MISSING_ZERO
                default_left[base + i] = goes_left
                left[base + i], right[base + i] = node(tree["left"][i]), node(tree["right"][i])
                value[base + i] = tree["split_value"][i]
            value[base + splits : base + splits + len(tree["leaf_value"])] = tree["leaf_value"]
            roots[t] = base if splits else base + splits
        owners = [p for p, e in enumerate(params["encodings"]) for _ in e["columns"]]
        return cls(
            params=params,
            column=column,
            threshold=threshold,
            nan_left=nan_left,
            zero_missing=zero_missing,
            default_left=default_left,
            left=left,
            right=right,
            value=value,
            roots=roots,
            baseline=float(value[roots].sum()),
            owners=np.array(owners, dtype=np.int64),
            depth=int(params.get("max_depth") or width),
        )

    def walk(self, x: FloatArray, *, contributions: bool) -> tuple[FloatArray, FloatArray | None]:
        """Raw scores (logits) of every row, and with `contributions` each column's Saabas contribution."""
        rows = x.shape[0]
        row_index = np.arange(rows)[:, None]
        node = np.broadcast_to(self.roots, (rows, len(self.roots)))
        by_column = np.zeros(x.shape) if contributions else None
        any_zero = bool(self.zero_missing.any())
        for _ in range(self.depth):
            column = self.column[node]
            value = x[row_index, column]
            go_left = np.where(np.isnan(value), self.nan_left[node], value <= self.threshold[node])
            if any_zero:
                zero = self.zero_missing[node] & (np.abs(np.nan_to_num(value)) <= _ZERO)
                go_left = np.where(zero, self.default_left[node], go_left)
            child = np.where(go_left, self.left[node], self.right[node])
            if by_column is not None:
                np.add.at(
                    by_column, (np.broadcast_to(row_index, node.shape), column), self.value[child] - self.value[node]
                )
            node = child
        return self.value[node].sum(axis=1), by_column

    def logits(self, rows: list[learned.Row]) -> FloatArray:
        x, _ = tree_matrix(self.params["encodings"], rows)
        raw, _ = self.walk(x, contributions=False)
        return raw

    def proba(self, rows: list[learned.Row]) -> FloatArray:
        if not rows:
            return np.zeros(0)
        return learned._sigmoid(self.logits(rows))

    def explain(self, row: learned.Row) -> tuple[float, float, list[tuple[str, Any, float]]]:
        """(probability, baseline log-odds, [(feature, value, contribution in log-odds)]) for one row."""
        x, _ = tree_matrix(self.params["encodings"], [row])
        raw, by_column = self.walk(x, contributions=True)
        assert by_column is not None  # noqa: S101
        per_feature = np.zeros(len(self.params["encodings"]))
        np.add.at(per_feature, self.owners, by_column[0])
        contributions = [
            (encoding["code"], row.get(encoding["code"]), float(per_feature[position]))
            for position, encoding in enumerate(self.params["encodings"])
        ]
        contributions.sort(key=lambda item: -abs(item[2]))
        return float(learned._sigmoid(raw)[0]), self.baseline, contributions


# --- training (LightGBM) ---------------------------------------------------------------------------------------


def _flatten(structure: dict[str, Any]) -> dict[str, list[Any]]:
    """LightGBM's nested `tree_structure` as flat lists indexed by split (children < 0 are leaves `~index`)."""
    if "split_index" not in structure:  # a tree of one leaf
        empty: list[Any] = []
        return {
            "feature": empty,
            "threshold": [],
            "default_left": [],
            "missing": [],
            "left": [],
            "right": [],
            "split_value": [],
            "leaf_value": [float(structure["leaf_value"])],
        }
    splits: dict[int, dict[str, Any]] = {}
    leaves: dict[int, float] = {}

    def ref(node: dict[str, Any]) -> int:
        if "split_index" in node:
            return int(node["split_index"])
        leaves[int(node["leaf_index"])] = float(node["leaf_value"])
        return ~int(node["leaf_index"])

    stack = [structure]
    while stack:
        node = stack.pop()
        if node["decision_type"] != "<=":
            raise learned.TrainingError(f"unexpected split {node['decision_type']!r}")
        splits[int(node["split_index"])] = {
            "feature": int(node["split_feature"]),
            "threshold": float(node["threshold"]),
            "default_left": bool(node["default_left"]),
            "missing": _MISSING_TYPES[node["missing_type"]],
            "left": ref(node["left_child"]),
            "right": ref(node["right_child"]),
            "split_value": float(node["internal_value"]),
        }
        stack.extend(child for child in (node["left_child"], node["right_child"]) if "split_index" in child)
    order = range(len(splits))
    return {
        **{key: [splits[i][key] for i in order] for key in ("feature", "threshold", "default_left", "missing")},
        **{key: [splits[i][key] for i in order] for key in ("left", "right", "split_value")},
        "leaf_value": [leaves[i] for i in range(len(leaves))],
    }


@dataclass(frozen=True)
class TreeOptions:
    num_leaves: int
    learning_rate: float
    max_trees: int
    seed: int


def _lightgbm_params(options: TreeOptions, rows: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "num_leaves": options.num_leaves,
        "learning_rate": options.learning_rate,
        # Leaves of at least ~2.5% of the rows (5 to 50): small data sets still split, big ones do not overfit.
        "min_data_in_leaf": max(5, min(50, rows // 40)),
        "lambda_l2": 5.0,
        "feature_fraction": 0.8,
        "seed": options.seed,
        "deterministic": True,
        "num_threads": 1,  # the same trees on every run and machine; the data sets are small
        "force_col_wise": True,
        "verbose": -1,
    }


def fit(
    x: FloatArray, y: FloatArray, groups: IntArray | None, options: TreeOptions
) -> tuple[list[dict[str, list[Any]]], int]:
    """Boost on `x`: the number of trees is chosen by early stopping on a 20% carve of these rows (the model's
    hold-out is never looked at), then the forest is refit on all of them with that many trees (+25% for the larger
    sample). Returns the flat trees and the largest depth."""
    import lightgbm

    params = _lightgbm_params(options, len(y))
    inner_train, inner_valid = learned.split(y, 0.2, options.seed + 1, groups=groups)
    rounds = options.max_trees
    if len(inner_valid) and 0 < y[inner_valid].sum() < len(inner_valid):
        probe = lightgbm.train(
            params,
            lightgbm.Dataset(x[inner_train], y[inner_train]),
            options.max_trees,
            valid_sets=[lightgbm.Dataset(x[inner_valid], y[inner_valid])],
            callbacks=[lightgbm.early_stopping(50, verbose=False)],
        )
        rounds = max(1, min(options.max_trees, math.ceil((probe.best_iteration or options.max_trees) * 1.25)))
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), rounds)
    trees = [_flatten(info["tree_structure"]) for info in booster.dump_model()["tree_info"]]
    return trees, _depth(trees)


def _depth(trees: list[dict[str, list[Any]]]) -> int:
    deepest = 0
    for tree in trees:
        level = {0: 1} if tree["feature"] else {}
        for index in range(len(tree["feature"])):  # parents have lower split indexes than their children
            for child in (tree["left"][index], tree["right"][index]):
                if child >= 0:
                    level[child] = level[index] + 1
        deepest = max([deepest, *level.values()])
    return deepest


def params_for(encodings: list[dict[str, Any]], trees: list[dict[str, list[Any]]], depth: int) -> dict[str, Any]:
    return {
        "algorithm": ALGORITHM,
        "encodings": [{**e, "columns": tree_columns(e)} for e in encodings],
        "max_depth": depth,
        "trees": trees,
    }
