"""A multinomial logistic regression in numpy (full-batch gradient descent with momentum, L2), its metrics, and a
hold-out split. The fitted model is plain data: classes, weights and biases as lists."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Softmax:
    classes: list[str]
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)

    @classmethod
    def fit(
        cls, x: np.ndarray, labels: Sequence[str], *, l2: float = 1e-4, steps: int = 300, rate: float = 0.5
    ) -> "Softmax":
        classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(labels), len(classes)), dtype=np.float32)
        y[np.arange(len(labels)), [index[label] for label in labels]] = 1.0
        # Scale features to a common spread: embeddings and TF-IDF rows then take the same step size.
        scale = float(np.sqrt((x * x).sum(axis=1).mean())) or 1.0
        xs = x / scale
        w = np.zeros((x.shape[1], len(classes)), dtype=np.float32)
        b = np.log(y.mean(axis=0) + 1e-6).astype(np.float32)
        vw, vb = np.zeros_like(w), np.zeros_like(b)
        n = float(len(labels))
        for _ in range(steps):
            p = _softmax(xs @ w + b)
            grad = p - y
            gw = xs.T @ grad / n + l2 * w
            gb = grad.mean(axis=0)
            vw = 0.9 * vw + gw
            vb = 0.9 * vb + gb
            w -= rate * vw
            b -= rate * vb
        return cls(classes, w / scale, b)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return _softmax(x @ self.weights + self.bias)

    def predict(self, x: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.proba(x).argmax(axis=1)]

    def to_params(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "weights": np.round(self.weights, 6).tolist(),
            "bias": [round(float(v), 6) for v in self.bias],
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Softmax":
        return cls(
            list(params["classes"]),
            np.asarray(params["weights"], dtype=np.float32),
            np.asarray(params["bias"], dtype=np.float32),
        )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return 0.0
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    classes = sorted(set(truth) | set(predicted))
    if not classes:
        return 0.0
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and hold-out parts (a seeded shuffle: the same split on retraining)."""
    order = np.random.default_rng(seed).permutation(count)
    held = max(1, round(count * fraction))
    return np.sort(order[held:]), np.sort(order[:held])
