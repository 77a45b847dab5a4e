"""Which pairs a ranker scores, and how scores become a top-K list."""

from __future__ import annotations

import polars as pl

from causalrec_assets.contracts import test_rows, train_rows


def unseen_pairs(users: pl.DataFrame, items: pl.DataFrame, interactions: pl.DataFrame) -> pl.DataFrame:
    """Every (user, item) pair absent from the user's training log."""
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    every = users.select("user_id").join(items.select("item_id"), how="cross")
    return every.join(seen, on=["user_id", "item_id"], how="anti")


def test_pairs(interactions: pl.DataFrame) -> pl.DataFrame:
    return test_rows(interactions).select("user_id", "item_id")


def top_k(scored: pl.DataFrame, k: int) -> pl.DataFrame:
    """``user_id, item_id, rank, score``: each user's k best pairs (ties broken by item_id,
    missing scores last)."""
    return (
        scored.with_columns(pl.col("score").cast(pl.Float64).fill_nan(None))
        .sort(["user_id", "score", "item_id"], descending=[False, True, False], nulls_last=True)
        .group_by("user_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int32).alias("rank"))
        .select("user_id", "item_id", "rank", "score")
    )
