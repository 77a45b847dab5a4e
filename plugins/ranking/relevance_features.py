"""Side features of the debiased relevance model: dense per-user and per-item matrices.

Split out of ``relevance_model`` because turning users and items tables (and item text
embeddings) into feature matrices is a job of its own: the model, the observation propensity
and the ranker all take the ``SideFeatures`` built here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from causalrec_assets.contracts import attribute_columns


@dataclass
class SideFeatures:
    """Dense per-user and per-item feature matrices, row-aligned with the id indexes."""

    user: np.ndarray  # (n_users, du) float32
    item: np.ndarray  # (n_items, di) float32
    user_names: list[str] = field(default_factory=list)
    item_names: list[str] = field(default_factory=list)

    @staticmethod
    def empty(n_users: int, n_items: int) -> SideFeatures:
        return SideFeatures(np.zeros((n_users, 0), np.float32), np.zeros((n_items, 0), np.float32))


def attribute_one_hot(
    frame: pl.DataFrame, max_levels: int = 64, numeric_levels: int = 12, numeric_bins: int = 5
) -> tuple[np.ndarray, list[str]]:
    """One-hot columns for every attribute of a users or items table. Numerics with more than
    ``numeric_levels`` values are quantile-binned; categoricals with more than ``max_levels``
    levels (ids, zip codes) are left out. Missing values get no column (all zeros)."""
    blocks, names = [], []
    for col in attribute_columns(frame):
        values = frame[col]
        if values.dtype.is_numeric() and values.n_unique() > numeric_levels:
            v = values.cast(pl.Float64).to_numpy()
            edges = np.unique(np.nanquantile(v, np.linspace(0, 1, numeric_bins + 1)[1:-1]))
            codes = np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right"))
            levels = list(range(len(edges) + 1))
            labels = [f"{col}=q{k}" for k in levels]
        else:
            text = values.cast(pl.String)
            uniques = [x for x in text.unique().sort().to_list() if x is not None]
            if len(uniques) < 2 or len(uniques) > max_levels:
                continue
            index = {x: k for k, x in enumerate(uniques)}
            codes = np.array([index.get(x, -1) if x is not None else -1 for x in text.to_list()])
            levels = list(range(len(uniques)))
            labels = [f"{col}={x}" for x in uniques]
        block = np.zeros((frame.height, len(levels)), np.float32)
        ok = codes >= 0
        block[np.nonzero(ok)[0], codes[ok]] = 1.0
        blocks.append(block)
        names += labels
    if not blocks:
        return np.zeros((frame.height, 0), np.float32), []
    return np.hstack(blocks), names


def embedding_matrix(ids: pl.DataFrame, embeddings: pl.DataFrame | None, key: str) -> np.ndarray:
    """Rows of ``embeddings`` aligned with ``ids`` (zeros where an id has none)."""
    if embeddings is None or embeddings.is_empty() or "embedding" not in embeddings.columns:
        return np.zeros((ids.height, 0), np.float32)
    joined = ids.select(key).join(embeddings.select(key, "embedding"), on=key, how="left", maintain_order="left")
    rows = joined["embedding"].to_list()
    dim = next((len(v) for v in rows if v is not None), 0)
    return np.array([v if v is not None else [0.0] * dim for v in rows], dtype=np.float32).reshape(ids.height, dim)


def build_side_features(
    users: pl.DataFrame,
    items: pl.DataFrame,
    item_embeddings: pl.DataFrame | None = None,
    use_attributes: bool = True,
    use_text: bool = True,
) -> SideFeatures:
    """User attributes; item attributes and item text embeddings (rows in table order)."""
    user_x, user_names = attribute_one_hot(users) if use_attributes else (np.zeros((users.height, 0)), [])
    item_x, item_names = attribute_one_hot(items) if use_attributes else (np.zeros((items.height, 0)), [])
    if use_text:
        emb = embedding_matrix(items, item_embeddings, "item_id")
        item_x = np.hstack([item_x, emb])
        item_names = item_names + [f"text_{k}" for k in range(emb.shape[1])]
    return SideFeatures(user_x.astype(np.float32), item_x.astype(np.float32), user_names, item_names)
