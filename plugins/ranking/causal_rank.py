"""The default ranker: by estimated uplift where the log has unexposed outcomes, else by
debiased relevance P(outcome | do(exposure = 1)).

Uplift of a (user, item) pair is P(y | do(shown), x) − P(y | do(not shown), x), a do-query on
the fitted Bayesian network with the pair's variables x as evidence (one query per distinct
x, not per pair). Relevance for rating data (exposure = 1 on every row) comes from an
inverse-propensity-weighted matrix factorisation with item text embeddings as side features.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.bayesnet import adjustment_set, interventional
from causalrec_assets.candidates import test_pairs, top_k, unseen_pairs
from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import (
    PluginConfig,
    PluginContext,
    RankingInputs,
    RankingOutput,
    RankingPlugin,
)
from causalrec_assets.relevance import WeightedMF, observation_propensity
from causalrec_assets.variables import OUTCOME, TREATMENT


class CausalRankingConfig(PluginConfig):
    k: int = Field(default=10, description="Recommendations per user.")
    mf_dim: int = Field(default=16, description="Latent dimension of the relevance model (rating data).")
    mf_epochs: int = Field(default=300, description="Full-batch epochs of the relevance model.")
    mf_weight_decay: float = Field(default=0.05, description="L2 strength of the relevance model.")
    propensity_clip: float = Field(default=0.02, description="Lower clip of observation propensities.")
    seed: int = Field(default=0, description="Seed of the relevance model.")


def uplift_scores(inputs: RankingInputs, pairs: pl.DataFrame) -> pl.DataFrame:
    """``user_id, item_id, score`` with score = the do-query uplift of each pair."""
    features = inputs.variable_encoder.pair_features(pairs)
    parents_y = [a for a, b in inputs.edges if b == OUTCOME and a != TREATMENT]
    evidence_vars = [v for v in parents_y if v in features.columns] or [
        v for v in adjustment_set(inputs.edges) if v in features.columns
    ]
    frame = pl.concat([pairs.select("user_id", "item_id"), features.select(evidence_vars)], how="horizontal")
    if not evidence_vars:
        p = interventional(inputs.network)
        return frame.with_columns(pl.lit(p.get("1", 0.0) - p.get("0", 0.0)).alias("score"))
    cells = frame.select(evidence_vars).unique()
    uplift = []
    for row in cells.iter_rows(named=True):
        p = interventional(inputs.network, evidence=row)
        uplift.append(p.get("1", 0.0) - p.get("0", 0.0))
    cells = cells.with_columns(pl.Series("score", uplift, dtype=pl.Float64))
    return frame.join(cells, on=evidence_vars, how="left", maintain_order="left").select("user_id", "item_id", "score")


def has_unexposed_outcomes(interactions: pl.DataFrame) -> bool:
    return train_rows(interactions)[TREATMENT].cast(pl.Int64).n_unique() > 1


class CausalRanking(RankingPlugin):
    """Uplift ranking (uplift data) or debiased relevance ranking (rating data)."""

    Config = CausalRankingConfig

    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput:
        cfg: CausalRankingConfig = self.config  # type: ignore[assignment]
        candidates, tests = (
            unseen_pairs(inputs.users, inputs.items, inputs.interactions),
            test_pairs(inputs.interactions),
        )
        if has_unexposed_outcomes(inputs.interactions):
            context.log.info("uplift ranking of %d candidate pairs", candidates.height)
            score = lambda pairs: uplift_scores(inputs, pairs)  # noqa: E731
        else:
            context.log.info("rating data: debiased relevance ranking of %d candidate pairs", candidates.height)
            score = self._relevance_model(inputs, context)
        return RankingOutput(recommendations=top_k(score(candidates), cfg.k), test_scores=score(tests))

    def _relevance_model(self, inputs: RankingInputs, context: PluginContext):
        cfg: CausalRankingConfig = self.config  # type: ignore[assignment]
        user_index = inputs.users.select("user_id").with_row_index("u")
        item_index = inputs.items.select("item_id").with_row_index("i")
        train = (
            train_rows(inputs.interactions)
            .join(user_index, on="user_id")
            .join(item_index, on="item_id")
            .with_columns(pl.col("u").cast(pl.Int64), pl.col("i").cast(pl.Int64))
        )
        side = item_index.join(inputs.item_embeddings, on="item_id", how="left", maintain_order="left")[
            "embedding"
        ].to_list()
        dim = next((len(v) for v in side if v is not None), 1)
        side_matrix = np.array([v if v is not None else [0.0] * dim for v in side], dtype=np.float32)
        weights = 1.0 / observation_propensity(train, user_index.height, item_index.height, cfg.propensity_clip)
        model = WeightedMF(dim=cfg.mf_dim, epochs=cfg.mf_epochs, weight_decay=cfg.mf_weight_decay, seed=cfg.seed)
        model.fit(
            train["u"].to_numpy(),
            train["i"].to_numpy(),
            train["outcome"].cast(pl.Float64).to_numpy(),
            weights,
            user_index.height,
            side_matrix,
        )
        context.log.info("relevance model fitted on %d ratings", train.height)

        def score(pairs: pl.DataFrame) -> pl.DataFrame:
            idx = pairs.join(user_index, on="user_id", how="left", maintain_order="left").join(
                item_index, on="item_id", how="left", maintain_order="left"
            )
            known = idx["u"].is_not_null() & idx["i"].is_not_null()
            preds = np.full(idx.height, model.mu_)
            mask = known.to_numpy()
            preds[mask] = model.predict(
                idx["u"].to_numpy()[mask].astype(np.int64), idx["i"].to_numpy()[mask].astype(np.int64)
            )
            return pairs.select("user_id", "item_id").with_columns(pl.Series("score", preds, dtype=pl.Float64))

        return score
