"""The default ranker: by estimated uplift where the log has unexposed outcomes, else by
debiased relevance P(outcome | do(exposure = 1)).

Uplift of a (user, item) pair is E[y | do(shown), x] − E[y | do(not shown), x] for the pair's
variables x that the graph says modify the effect (the outcome's parents). By default it is
estimated by the DR-learner (doubly robust pseudo-outcomes, adjusted with the graph's
backdoor set, regressed on x); the Bayesian network's do-query is the alternative.

Relevance for rating data (exposure = 1 on every row) comes from an inverse-propensity-weighted
matrix factorisation with item text embeddings as side features.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.bayesnet import adjustment_set, interventional
from causalrec_assets.candidates import test_pairs, top_k, unseen_pairs
from causalrec_assets.contracts import train_rows
from causalrec_assets.estimators import aipw, dummy_columns, fit_dr_learner, one_hot
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
    uplift_model: Literal["dr_learner", "bn_do_query"] = Field(
        default="dr_learner",
        description=(
            "How a pair's uplift is estimated: 'dr_learner' boosts the doubly robust pseudo-outcomes on the "
            "outcome's parents in the graph; 'bn_do_query' asks the Bayesian network per distinct pair."
        ),
    )
    propensity_clip: float = Field(default=0.02, description="Propensities are clipped to [c, 1 - c].")
    mf_dim: int = Field(default=16, description="Latent dimension of the relevance model (rating data).")
    mf_epochs: int = Field(default=300, description="Full-batch epochs of the relevance model.")
    mf_weight_decay: float = Field(default=0.05, description="L2 strength of the relevance model.")
    seed: int = Field(default=0, description="Seed of the models.")


def effect_modifiers(edges: list[tuple[str, str]], available: list[str]) -> list[str]:
    """The variables a pair's uplift can depend on under the graph: the outcome's parents
    (besides exposure), else the adjustment set."""
    parents_y = [a for a, b in edges if b == OUTCOME and a != TREATMENT and a in available]
    return parents_y or [v for v in adjustment_set(edges) if v in available]


def bn_uplift_scores(inputs: RankingInputs, pairs: pl.DataFrame) -> pl.DataFrame:
    """``user_id, item_id, score``: the do-query uplift, one query per distinct pair profile."""
    features = inputs.variable_encoder.pair_features(pairs)
    modifiers = effect_modifiers(inputs.edges, features.columns)
    frame = pl.concat([pairs.select("user_id", "item_id"), features.select(modifiers)], how="horizontal")
    cells = frame.select(modifiers).unique() if modifiers else pl.DataFrame({"_": [0]})
    uplift = []
    for row in cells.iter_rows(named=True):
        p = interventional(inputs.network, evidence={k: v for k, v in row.items() if k != "_"})
        uplift.append(p.get("1", 0.0) - p.get("0", 0.0))
    cells = cells.with_columns(pl.Series("score", uplift, dtype=pl.Float64))
    if not modifiers:
        return frame.with_columns(pl.lit(uplift[0]).alias("score"))
    return frame.join(cells, on=modifiers, how="left", maintain_order="left").select("user_id", "item_id", "score")


def dr_uplift_model(inputs: RankingInputs, clip: float, seed: int):
    """A scorer of pairs: the DR-learner fitted on the training log's pseudo-outcomes."""
    data = inputs.variables
    modifiers = effect_modifiers(inputs.edges, [c for c in data.columns if c not in (TREATMENT, OUTCOME)])
    nuisance = aipw(data, adjustment_set(inputs.edges), TREATMENT, OUTCOME, clip)
    columns = dummy_columns(data, modifiers)
    model = fit_dr_learner(one_hot(data, modifiers, columns), nuisance.psi, seed)

    def score(pairs: pl.DataFrame) -> pl.DataFrame:
        features = inputs.variable_encoder.pair_features(pairs)
        preds = model.predict(one_hot(features, modifiers, columns)) if pairs.height else []
        return pairs.select("user_id", "item_id").with_columns(pl.Series("score", preds, dtype=pl.Float64))

    return score


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
            context.log.info("uplift ranking (%s) of %d candidate pairs", cfg.uplift_model, candidates.height)
            if cfg.uplift_model == "bn_do_query":
                score = lambda pairs: bn_uplift_scores(inputs, pairs)  # noqa: E731
            else:
                score = dr_uplift_model(inputs, cfg.propensity_clip, cfg.seed)
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
