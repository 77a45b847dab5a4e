"""The reference ranker: items by how often they led to a positive outcome in the log."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext, ProfileRanker, Ranker, RankingInputs, RankingPlugin, TopKConfig


class PopularityConfig(TopKConfig):
    """Only ``k``: popularity has nothing to tune."""


class PopularityRanking(RankingPlugin):
    """Correlation, not cause: the baseline every causal ranker must beat."""

    Config = PopularityConfig

    def fit(self, inputs: RankingInputs, context: PluginContext) -> Ranker:
        train = train_rows(inputs.interactions)
        threshold = inputs.variable_encoder.outcome_threshold
        counts = train.group_by("item_id").agg(
            (pl.col("outcome").cast(pl.Float64) >= threshold).sum().cast(pl.Float64).alias("score")
        )
        # one ranking for everyone: every user shares one profile
        everyone = inputs.users.select("user_id", pl.lit(0, pl.UInt32).alias("profile"))
        return ProfileRanker.fit(ItemCounts(counts), everyone, inputs.items, self.config.k)  # type: ignore[attr-defined]


@dataclass
class ItemCounts:
    """Scores a pair by its item's count of positive outcomes in the training log."""

    counts: pl.DataFrame  # item_id, score

    def __call__(self, pairs: pl.DataFrame) -> pl.DataFrame:
        return (
            pairs.select("user_id", "item_id")
            .join(self.counts, on="item_id", how="left", maintain_order="left")
            .with_columns(pl.col("score").fill_null(0.0))
        )
