"""Item texts in, embedding tables out; user profiles from what users engaged with."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from causalrec_assets.contracts import attribute_columns


def item_texts(items: pl.DataFrame) -> list[str]:
    """The text to embed for each item. Items without text (no ``text`` column, null or blank)
    fall back to their attributes ("price_tier: budget; color: red"), and to the item id when
    they have none, so every item gets a vector that says what is known about it."""
    attrs = attribute_columns(items)
    texts = items["text"].cast(pl.String).to_list() if "text" in items.columns else [None] * items.height
    rows = items.select(attrs).rows() if attrs else [()] * items.height
    out = []
    for item_id, text, values in zip(items["item_id"].to_list(), texts, rows, strict=True):
        if text is not None and text.strip():
            out.append(text)
            continue
        described = "; ".join(f"{a}: {v}" for a, v in zip(attrs, values, strict=True) if v is not None)
        out.append(described or f"item {item_id}")
    return out


def count_missing_text(items: pl.DataFrame) -> int:
    if "text" not in items.columns:
        return items.height
    return int(
        items.select((pl.col("text").is_null() | (pl.col("text").cast(pl.String).str.strip_chars() == "")).sum()).item()
    )


def text_hash(text: str, model_key: str) -> str:
    return hashlib.sha256(f"{model_key}\x00{text}".encode()).hexdigest()[:24]


def embedding_frame(item_ids: pl.Series, texts: list[str], vectors: np.ndarray, model_key: str) -> pl.DataFrame:
    """``item_id, text_hash, model_key, embedding`` (embedding: a fixed-size float32 array)."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return pl.DataFrame(
        {
            "item_id": item_ids,
            "text_hash": [text_hash(t, model_key) for t in texts],
            "model_key": [model_key] * len(texts),
            "embedding": pl.Series("embedding", vectors.astype(np.float32), dtype=pl.Array(pl.Float32, dim)),
        }
    )


def user_profiles(train: pl.DataFrame, item_embeddings: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Each user's normalised mean embedding over the items they engaged with: positive
    outcomes where there are any, else what they were exposed to, else everything logged.
    Users with no training rows are left out; the count of users with engagement is returned."""
    outcome = train["outcome"].cast(pl.Float64)
    positive = outcome >= (4.0 if outcome.max() is not None and outcome.max() > 1 else 1.0)
    weighted = train.select("user_id", "item_id").with_columns(
        (positive.cast(pl.Int8) * 4 + train["exposure"].cast(pl.Int8) * 2 + 1).alias("tier")
    )
    best = weighted.group_by("user_id").agg(pl.col("tier").max().alias("best"))
    chosen = weighted.join(best, on="user_id").filter(
        (pl.col("tier") == pl.col("best")) | ((pl.col("tier") >= 4) & (pl.col("best") >= 4))
    )
    dim = (
        item_embeddings.schema["embedding"].size if isinstance(item_embeddings.schema["embedding"], pl.Array) else None
    )
    joined = chosen.join(item_embeddings.select("item_id", "embedding"), on="item_id")
    if joined.is_empty() or dim is None:
        return pl.DataFrame(
            {"user_id": [], "embedding": []},
            schema={"user_id": train.schema["user_id"], "embedding": item_embeddings.schema["embedding"]},
        ), 0
    matrix = joined["embedding"].to_numpy()
    users, inverse = np.unique(joined["user_id"].to_numpy(), return_inverse=True)
    sums = np.zeros((len(users), dim), dtype=np.float64)
    np.add.at(sums, inverse, matrix)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    profiles = (sums / np.where(norms == 0, 1, norms)).astype(np.float32)
    engaged = int(best.filter(pl.col("best") >= 4).height)
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(users).cast(train.schema["user_id"]),
            "embedding": pl.Series("embedding", profiles, dtype=pl.Array(pl.Float32, dim)),
        }
    )
    return frame, engaged
