"""The ``item_topic`` variable: clusters of the item text embeddings.

k is given, or chosen by the silhouette criterion (cosine) over a small range, so the
semantic signal the encoder extracts enters the causal model as one discrete variable.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


def choose_topics(
    embeddings: np.ndarray, k: int | None = None, k_range: tuple[int, int] = (2, 12), seed: int = 0
) -> tuple[np.ndarray, dict[int, float]]:
    """Cluster labels for each row of ``embeddings`` and the silhouette of each k tried."""
    n = embeddings.shape[0]
    if n < 3:
        return np.zeros(n, dtype=int), {}
    if k is not None:
        k = max(1, min(k, n))
        return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(embeddings), {}
    lo, hi = k_range
    hi = min(hi, n - 1)
    scores: dict[int, float] = {}
    best: tuple[float, np.ndarray] | None = None
    sample = min(n, 3000)
    for kk in range(lo, hi + 1):
        labels = KMeans(n_clusters=kk, n_init=4, random_state=seed).fit_predict(embeddings)
        if len(set(labels)) < 2:
            continue
        s = float(silhouette_score(embeddings, labels, metric="cosine", sample_size=sample, random_state=seed))
        scores[kk] = s
        if best is None or s > best[0]:
            best = (s, labels)
    if best is None:
        return np.zeros(n, dtype=int), scores
    return best[1], scores


def item_topics(item_embeddings: pl.DataFrame, k: int | None = None, seed: int = 0) -> pl.DataFrame:
    """``item_id``, ``item_topic`` (labels ``t0``, ``t1``, … ordered by cluster size)."""
    if item_embeddings.is_empty():
        return pl.DataFrame(
            {"item_id": item_embeddings["item_id"], "item_topic": []}, schema_overrides={"item_topic": pl.String}
        )
    matrix = np.asarray(item_embeddings["embedding"].to_list(), dtype=np.float32)
    labels, _ = choose_topics(matrix, k=k, seed=seed)
    order = {
        lab: rank
        for rank, (lab, _) in enumerate(
            sorted(((lab, int((labels == lab).sum())) for lab in set(labels.tolist())), key=lambda t: (-t[1], t[0]))
        )
    }
    return pl.DataFrame(
        {"item_id": item_embeddings["item_id"], "item_topic": [f"t{order[lab]}" for lab in labels.tolist()]}
    )
