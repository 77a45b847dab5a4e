"""The reference ranker: items by how often they led to a positive outcome in the log."""

from __future__ import annotations

import polars as pl

from causalrec_assets.candidates import test_pairs, top_k, unseen_pairs
from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.protocol import RankingInputs, RankingOutput, RankingPlugin, TopKConfig


class PopularityConfig(TopKConfig):
    """Only ``k``: popularity has nothing to tune."""


class PopularityRanking(RankingPlugin):
    """Correlation, not cause: the baseline every causal ranker must beat."""

    Config = PopularityConfig

    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput:
        train = train_rows(inputs.interactions)
        threshold = inputs.variable_encoder.outcome_threshold
        counts = train.group_by("item_id").agg(
            (pl.col("outcome").cast(pl.Float64) >= threshold).sum().cast(pl.Float64).alias("score")
        )

        def score(pairs: pl.DataFrame) -> pl.DataFrame:
            return pairs.join(counts, on="item_id", how="left", maintain_order="left").with_columns(
                pl.col("score").fill_null(0.0)
            )

        candidates = unseen_pairs(inputs.users, inputs.items, inputs.interactions)
        return RankingOutput(
            recommendations=top_k(score(candidates), self.config.k),  # type: ignore[attr-defined]
            test_scores=score(test_pairs(inputs.interactions)),
        )
