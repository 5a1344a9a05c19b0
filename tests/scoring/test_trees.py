"""Boosted trees as data: training on a known pattern, the numpy walk against LightGBM, explanations, the choice."""

import json
import math
import random
import subprocess
import sys
from typing import Any

import lightgbm
import numpy as np
import pytest

from app.scoring import learned, trees

FEATURES = [("region", "categorical"), ("visits", "numeric"), ("minutes", "numeric"), ("is_b2b", "boolean")]


def _interaction(n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """A pattern a linear model cannot draw: B2B converts with many visits, B2C with long visits."""
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        row: dict[str, Any] = {
            "region": rng.choice(["north", "south", "east", "west"]),
            "visits": rng.randint(0, 20) if rng.random() > 0.1 else None,
            "minutes": round(rng.uniform(0, 60), 1),
            "is_b2b": rng.random() < 0.5,
        }
        visits = row["visits"] if row["visits"] is not None else 0
        logit = (2.5 if visits > 10 else -2.0) if row["is_b2b"] else (2.5 if row["minutes"] > 30 else -2.0)
        logit += 0.5 if row["region"] == "north" else 0.0
        rows.append(row)
        labels.append(int(rng.random() < 1 / (1 + math.exp(-logit))))
    return rows, labels


def _linear(n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """A smooth linear signal in one number: what the logistic model draws best."""
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        row = {"region": rng.choice(["north", "south"]), "visits": rng.uniform(0, 20), "minutes": 0.0, "is_b2b": True}
        rows.append(row)
        labels.append(int(rng.random() < 1 / (1 + math.exp(-(row["visits"] - 10) / 4))))
    return rows, labels


def _train(rows: list[dict[str, Any]], labels: list[int], **options: Any) -> learned.Trained:
    return learned.train(
        rows, labels, FEATURES, holdout_fraction=0.2, l2=1.0, bins=5, min_category_count=5, seed=0, **options
    )


class TestTraining:
    def test_trees_learn_an_interaction_and_are_kept_over_the_logistic_model(self) -> None:
        rows, labels = _interaction(1500, seed=1)
        trained = _train(rows, labels)
        metrics = trained.metrics
        assert trained.params["algorithm"] == metrics["algorithm"] == trees.ALGORITHM
        by_algorithm = {c["algorithm"]: c for c in metrics["candidates"]}
        assert set(by_algorithm) == {learned.LOGISTIC, trees.ALGORITHM}
        assert by_algorithm[trees.ALGORITHM]["chosen"]
        assert not by_algorithm[learned.LOGISTIC]["chosen"]
        assert metrics["roc_auc"] > 0.85  # far from chance (0.5)
        assert by_algorithm[trees.ALGORITHM]["roc_auc"] > by_algorithm[learned.LOGISTIC]["roc_auc"] + 0.05
        assert metrics["brier"] < by_algorithm[learned.LOGISTIC]["brier"]

    def test_the_logistic_model_stays_when_the_trees_do_not_beat_it(self) -> None:
        rows, labels = _linear(600, seed=2)
        metrics = _train(rows, labels).metrics
        by_algorithm = {c["algorithm"]: c for c in metrics["candidates"]}
        assert metrics["algorithm"] == learned.LOGISTIC
        assert by_algorithm[learned.LOGISTIC]["chosen"]
        assert by_algorithm[trees.ALGORITHM]["roc_auc"] <= by_algorithm[learned.LOGISTIC]["roc_auc"] + 0.002

    def test_one_algorithm_can_be_asked_for(self) -> None:
        rows, labels = _linear(300, seed=3)
        forced = _train(rows, labels, algorithm="boosted_trees")
        assert [c["algorithm"] for c in forced.metrics["candidates"]] == [trees.ALGORITHM]
        assert forced.params["algorithm"] == trees.ALGORITHM
        only = _train(rows, labels, algorithm="logistic")
        assert [c["algorithm"] for c in only.metrics["candidates"]] == [learned.LOGISTIC]

    def test_training_is_deterministic(self) -> None:
        rows, labels = _interaction(400, seed=4)
        assert (
            _train(rows, labels, algorithm="boosted_trees").params
            == _train(rows, labels, algorithm="boosted_trees").params
        )

    def test_groups_stay_on_one_side_of_the_split(self) -> None:
        y = np.array([1.0] * 40 + [0.0] * 40)
        groups = np.repeat(np.arange(20), 4)  # 4 rows per group, one label per group
        train_idx, holdout_idx = learned.split(y, 0.2, 0, groups=groups)
        assert not set(groups[train_idx]) & set(groups[holdout_idx])
        assert len(train_idx) + len(holdout_idx) == 80
        assert len(set(groups[holdout_idx])) == 4
        assert y[holdout_idx].mean() == 0.5  # stratified by the groups' labels: 2 of each


class TestStoredTrees:
    @pytest.fixture(scope="class")
    def model(self) -> dict[str, Any]:
        rows, labels = _interaction(800, seed=5)
        return _train(rows, labels, algorithm="boosted_trees").params

    def test_json_round_trip_gives_identical_scores(self, model: dict[str, Any]) -> None:
        rows, _ = _interaction(200, seed=6)
        stored = json.loads(json.dumps(model))
        assert np.array_equal(learned.predict_proba(model, rows), learned.predict_proba(stored, rows))

    def test_contributions_add_up_to_the_logit(self, model: dict[str, Any]) -> None:
        rows, _ = _interaction(50, seed=7)
        forest = trees.Forest.from_params(model)
        for row in rows:
            probability, baseline, parts = forest.explain(row)
            assert {feature for feature, _, _ in parts} == {code for code, _ in FEATURES}
            logit = math.log(probability / (1 - probability))
            assert baseline + sum(c for _, _, c in parts) == pytest.approx(logit, abs=1e-9)
        hot = forest.explain({"region": "north", "visits": 15, "minutes": 5.0, "is_b2b": True})
        contributions = {feature: c for feature, _, c in hot[2]}
        assert contributions["visits"] > 0.5  # many visits is what makes this B2B lead hot

    def test_scoring_never_imports_lightgbm(self, model: dict[str, Any]) -> None:
        code = (
            "import json, sys; import app.main; from app.scoring import engine, learned; "
            "m = learned.compile_params(json.loads(sys.stdin.read())); "
            "m.proba([{'visits': 3}]); m.explain({'visits': 3}); "
            "assert 'lightgbm' not in sys.modules, 'lightgbm imported'"
        )
        done = subprocess.run([sys.executable, "-c", code], input=json.dumps(model), text=True, capture_output=True)
        assert done.returncode == 0, done.stderr


def _booster(x: np.ndarray, y: np.ndarray, **params: Any) -> lightgbm.Booster:
    base = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "deterministic": True, "seed": 0}
    return lightgbm.train(base | params, lightgbm.Dataset(x, y), 60)


class TestAgainstLightGBM:
    @pytest.mark.parametrize(
        "params",
        [{}, {"zero_as_missing": True}, {"use_missing": False}, {"min_data_in_leaf": 400}],
        ids=["nan-missing", "zero-as-missing", "no-missing", "one-leaf-trees"],
    )
    def test_numpy_walk_equals_lightgbm(self, params: dict[str, Any]) -> None:
        rng = np.random.default_rng(8)
        x = rng.normal(size=(1000, 4))
        x[:, 3] = rng.integers(0, 2, size=1000)  # a one-hot-like column with many zeros
        x[rng.random(1000) < 0.15, 1] = np.nan
        y = ((x[:, 0] + np.nan_to_num(x[:, 1], nan=1.0) - x[:, 3] + rng.normal(size=1000)) > 0).astype(float)
        booster = _booster(x, y, **params)
        flat = [trees._flatten(t["tree_structure"]) for t in booster.dump_model()["tree_info"]]
        encodings = [{"code": f"c{i}", "kind": "numeric", "columns": [f"c{i}"]} for i in range(4)]
        forest = trees.Forest.from_params(trees.params_for(encodings, flat, trees._depth(flat)))
        probe = rng.normal(size=(500, 4))
        probe[:, 3] = rng.integers(0, 2, size=500)
        probe[rng.random(500) < 0.2, 1] = np.nan
        probe[rng.random(500) < 0.1, 0] = np.nan  # missing where training had none
        probe[:5, 2] = 0.0
        raw, by_column = forest.walk(probe, contributions=True)
        expected = booster.predict(probe, raw_score=True)
        assert np.max(np.abs(raw - expected)) < 1e-6
        assert by_column is not None
        assert np.allclose(forest.baseline + by_column.sum(axis=1), raw, atol=1e-9)
