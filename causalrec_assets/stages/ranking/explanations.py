"""The ``explanations`` asset's rows: why each recommendation scored as it did, from the
fitted ranker's own ``explain`` (plugin API 1.6), for a bounded number of users."""

from __future__ import annotations

import polars as pl

from causalrec_assets.stages.ranking.protocol import Ranker

MAX_USERS = 20_000  # explained users per run: the first by user_id (the rest keep their lists unexplained)
SCHEMA = {
    "user_id": pl.Utf8,
    "item_id": pl.Utf8,
    "rank": pl.Int64,
    "score": pl.Float64,
    "modifier": pl.Utf8,
    "contribution": pl.Float64,
    "value": pl.Utf8,
}


def empty_explanations(recommendations: pl.DataFrame) -> pl.DataFrame:
    """No rows, with the recommendations' id types."""
    ids = {c: recommendations.schema[c] for c in ("user_id", "item_id") if c in recommendations.columns}
    return pl.DataFrame(schema={**SCHEMA, **ids})


def with_values(table: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """``table`` with ``value``: the pair's value of a modifier that is a column of ``users`` or
    ``items`` (``age_group`` → ``25-34``), null for a derived one (a topic, a taste)."""
    parts = []
    for (modifier,), rows in table.group_by("modifier", maintain_order=True):
        source, key = (users, "user_id") if modifier in users.columns else (items, "item_id")
        if modifier in source.columns and modifier != key:
            values = source.select(key, pl.col(modifier).cast(pl.Utf8).alias("value"))
            parts.append(rows.join(values, on=key, how="left", maintain_order="left"))
        else:
            parts.append(rows.with_columns(pl.lit(None, pl.Utf8).alias("value")))
    return pl.concat(parts) if parts else table.with_columns(pl.lit(None, pl.Utf8).alias("value"))


def explain_recommendations(
    ranker: Ranker | None,
    recommendations: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
    max_users: int = MAX_USERS,
) -> tuple[pl.DataFrame, str]:
    """``user_id, item_id, rank, score, modifier, contribution, value`` (a few modifiers per
    pair, largest first) for the recommendations of at most ``max_users`` users, and a note on
    what was explained."""
    if ranker is None:
        return empty_explanations(recommendations), "the plugin implements rank() only: no fitted ranker to ask"
    explained = recommendations["user_id"].unique().sort().head(max_users)
    chosen = recommendations.filter(pl.col("user_id").is_in(explained.implode()))
    reasons = ranker.explain(chosen)
    if reasons is None:
        return empty_explanations(recommendations), f"{type(ranker).__name__} does not explain its scores"
    missing = {"user_id", "item_id", "modifier", "contribution"} - set(reasons.columns)
    if missing:
        raise ValueError(f"{type(ranker).__name__}.explain returned no {sorted(missing)} column(s)")
    table = chosen.select("user_id", "item_id", "rank", "score").join(
        reasons.select("user_id", "item_id", "modifier", "contribution"), on=["user_id", "item_id"], how="inner"
    )
    table = with_values(table, users, items)
    table = table.sort(["user_id", "rank", pl.col("contribution").abs()], descending=[False, False, True])
    note = f"{explained.len()} of {recommendations['user_id'].n_unique()} users' recommendations explained"
    return table, note
