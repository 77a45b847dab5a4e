"""Which pairs a ranker scores, and how scores become a top-K list."""

from __future__ import annotations

from collections.abc import Callable

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


def profile_top_k(
    score: Callable[[pl.DataFrame], pl.DataFrame],
    user_profiles: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    k: int,
) -> pl.DataFrame:
    """Exactly ``top_k(score(unseen_pairs(...)), k)`` for a score that depends on a pair only
    through its user's profile (``user_profiles``: ``user_id, profile``) and its item.

    Each profile's items are scored once, through one user of that profile; each user then
    takes the first k items of its profile's ranking that it has not seen. The cost grows with
    profiles x items plus users x k plus logged pairs, not users x items."""
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    reps = user_profiles.group_by("profile", maintain_order=True).agg(pl.col("user_id").first())
    grid = reps.join(items.select("item_id"), how="cross")
    scored = grid.with_columns(score(grid.select("user_id", "item_id"))["score"].cast(pl.Float64).fill_nan(None))
    ranked = scored.sort(["profile", "score", "item_id"], descending=[False, True, False], nulls_last=True)
    ranked = ranked.select("profile", "item_id", "score", pl.int_range(pl.len()).over("profile").alias("_position"))
    # a user needs at most k + (what it has seen) items of its profile's ranking: sum over users = users x k + log
    counts = seen.group_by("user_id").len("_seen")
    wanted = (
        user_profiles.join(counts, on="user_id", how="left")
        .select("user_id", "profile", pl.int_ranges(0, pl.col("_seen").fill_null(0) + k).alias("_position"))
        .explode("_position")
    )
    pairs = wanted.join(ranked.with_columns(pl.col("_position").cast(pl.Int64)), on=["profile", "_position"])
    return top_k(pairs.join(seen, on=["user_id", "item_id"], how="anti"), k)
