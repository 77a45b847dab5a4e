"""Uplift ranking: items by E[y | do(shown), x] − E[y | do(not shown), x], for logs that record
outcomes of unexposed pairs too.

x are the pair's variables the graph says can modify the effect (the outcome's parents). By
default the uplift is estimated by the DR-learner (doubly robust pseudo-outcomes, adjusted
with the graph's backdoor set, regressed on x); the Bayesian network's do-query is the
alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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
from causalrec_assets.variables import OUTCOME, TREATMENT

UpliftModel = Literal["dr_learner", "bn_do_query"]
UPLIFT_MODEL_HELP = (
    "How a pair's uplift is estimated: 'dr_learner' boosts the doubly robust pseudo-outcomes on the "
    "outcome's parents in the graph; 'bn_do_query' asks the Bayesian network per distinct pair."
)

PairScorer = Callable[[pl.DataFrame], pl.DataFrame]


class UpliftConfig(PluginConfig):
    k: int = Field(default=10, description="Recommendations per user.")
    uplift_model: UpliftModel = Field(default="dr_learner", description=UPLIFT_MODEL_HELP)
    propensity_clip: float = Field(default=0.02, description="Propensities are clipped to [c, 1 - c].")
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
        return frame.with_columns(pl.lit(uplift[0]).alias("score")).select("user_id", "item_id", "score")
    return frame.join(cells, on=modifiers, how="left", maintain_order="left").select("user_id", "item_id", "score")


def dr_uplift_model(inputs: RankingInputs, clip: float, seed: int) -> PairScorer:
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


def uplift_scorer(inputs: RankingInputs, model: UpliftModel, clip: float, seed: int) -> PairScorer:
    if not has_unexposed_outcomes(inputs.interactions):
        raise ValueError(
            "uplift ranking needs training rows with exposure = 0 and their outcomes; this log has one exposure "
            "value only (rating data): use the 'relevance' or 'causal' ranker"
        )
    if model == "bn_do_query":
        return lambda pairs: bn_uplift_scores(inputs, pairs)
    return dr_uplift_model(inputs, clip, seed)


class UpliftRanking(RankingPlugin):
    """Ranks by estimated uplift (DR-learner or Bayesian-network do-query)."""

    Config = UpliftConfig

    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput:
        cfg: UpliftConfig = self.config  # type: ignore[assignment]
        candidates = unseen_pairs(inputs.users, inputs.items, inputs.interactions)
        context.log.info("uplift ranking (%s) of %d candidate pairs", cfg.uplift_model, candidates.height)
        score = uplift_scorer(inputs, cfg.uplift_model, cfg.propensity_clip, cfg.seed)
        return RankingOutput(
            recommendations=top_k(score(candidates), cfg.k), test_scores=score(test_pairs(inputs.interactions))
        )
