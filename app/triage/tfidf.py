"""A small TF-IDF encoder in numpy: word uni/bigrams and character 3-grams inside words (typos keep most of their
character n-grams), vocabulary chosen by document frequency, sublinear tf, l2-normalised rows.

The fitted encoder is plain data (`to_params` / `from_params`): the vocabulary and its idf, stored as JSON with the
model. Its vectors are sparse in spirit but small enough (a capped vocabulary, capped batches) to be dense here.
"""

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

MAX_FEATURES = 6000
MIN_DF = 2
PROJECTION_DIM = 256  # the dense vector kept for similarity (a fixed random projection of the TF-IDF vector)
PROJECTION_SEED = 17
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in folded if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The terms of a text: words, word bigrams (`a b`) and the character 3-grams of each word (`#ab`, `abc`…)."""
    words = _WORD.findall(normalise(text))
    out = list(words)
    out.extend(f"{a} {b}" for a, b in pairwise(words))
    for word in words:
        padded = f"#{word}#"
        if len(padded) > 3:
            out.extend("~" + padded[i : i + 3] for i in range(len(padded) - 2))
    return out


@dataclass
class Tfidf:
    vocabulary: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str], *, max_features: int = MAX_FEATURES, min_df: int = MIN_DF) -> "Tfidf":
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(terms(text)))
        kept = [t for t, n in df.items() if n >= min_df] or list(df)
        kept.sort(key=lambda t: (-df[t], t))
        kept = sorted(kept[:max_features])
        count = len(texts)
        idf = np.array([math.log((1 + count) / (1 + df[t])) + 1.0 for t in kept], dtype=np.float32)
        return cls({t: i for i, t in enumerate(kept)}, idf)

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        rows = list(texts)
        out = np.zeros((len(rows), len(self.vocabulary)), dtype=np.float32)
        for r, text in enumerate(rows):
            counts = Counter(t for t in terms(text) if t in self.vocabulary)
            for term, n in counts.items():
                j = self.vocabulary[term]
                out[r, j] = (1.0 + math.log(n)) * self.idf[j]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.where(norms == 0, 1.0, norms), dtype=np.float32)

    @property
    def names(self) -> list[str]:
        names = [""] * len(self.vocabulary)
        for term, index in self.vocabulary.items():
            names[index] = term
        return names

    def to_params(self) -> dict[str, Any]:
        return {"terms": self.names, "idf": [round(float(v), 6) for v in self.idf]}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Tfidf":
        return cls({t: i for i, t in enumerate(params["terms"])}, np.asarray(params["idf"], dtype=np.float32))

    def projection(self) -> np.ndarray:
        """A fixed random projection (seeded: the same matrix in every process) to PROJECTION_DIM dimensions; cosine
        similarities survive it closely (Johnson–Lindenstrauss), so similarity search stores small vectors."""
        rng = np.random.default_rng(PROJECTION_SEED)
        matrix = rng.standard_normal((len(self.vocabulary), PROJECTION_DIM)).astype(np.float32)
        return matrix / math.sqrt(PROJECTION_DIM)

    def dense(self, vectors: np.ndarray, projection: np.ndarray) -> np.ndarray:
        return unit(vectors @ projection)


def unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def readable_term(term: str) -> str:
    return "…" + term[1:].strip("#") + "…" if term.startswith("~") else term
