"""Row samples for model fits on large logs: a model fitted on a few hundred thousand random
rows of a multi-million-row log is about as good, and its predictions still cover every row."""

from __future__ import annotations

import numpy as np

__all__ = [
    "FIT_ROWS",
    "sample_rows",
]

FIT_ROWS = 250_000  # rows a nuisance or assignment model is fitted on, at most, by default


def sample_rows(rows: int, max_rows: int, seed: int) -> np.ndarray | None:
    """Sorted indices of ``max_rows`` of ``rows`` drawn without replacement (seeded); None
    when there is nothing to leave out (``rows <= max_rows``, or ``max_rows`` is 0)."""
    if not max_rows or rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
