"""Debiased relevance ranking: items by E[outcome | do(shown), user, item].

On rating data (every logged row exposed) the question is which of all user x item pairs
were observed; on a log with unexposed rows it is which logged rows were exposed. Either
way the matrix factorisation of ``causalrec_plugins.ranking.relevance_model`` is trained on the observed
(exposed) training rows with naive, IPS or DR-JL weights, hyperparameters chosen on a
validation split of the training log. The ``split = "test"`` rows never enter training,
propensities or model selection: they are only scored.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext, Ranker, RankingInputs, RankingPlugin, ScoredRanker, TopKConfig
from causalrec_toolkit.variables import OUTCOME, TREATMENT


class RelevanceParams(TopKConfig):
    """Parameters of the debiased relevance model (shared by the ``relevance`` and ``causal``
    rankers)."""

    weighting: Literal["none", "ips", "dr"] = Field(
        default="ips",
        description=(
            "Loss of the relevance model: 'none' (naive MSE on the observed pairs), 'ips' (self-normalised "
            "inverse-propensity weights), 'dr' (doubly robust joint learning, DR-JL)."
        ),
    )
    side_features: bool = Field(
        default=True,
        description="Augment the factors with user attributes and item attributes and text embeddings.",
    )
    mf_dim: int = Field(default=16, ge=1, description="Latent dimension of the relevance model.")
    mf_epochs: int = Field(
        default=300, ge=1, description="Most full-batch epochs (early-stopped on the validation split)."
    )
    mf_lr: float = Field(default=0.03, gt=0, description="Adam learning rate of the relevance model.")
    mf_weight_decay: list[float] = Field(
        default=[0.03, 0.1, 0.3, 1.0],
        description="Candidate L2 strengths of the id factors; the validation split picks one (one value: no search).",
    )
    mf_side_decay: float = Field(default=0.01, ge=0, description="L2 strength of the side-feature weights.")
    validation_share: float = Field(
        default=0.15,
        ge=0,
        lt=1,
        description="Share of each user's training rows held out to choose the L2 strength and epochs.",
    )
    propensity_clip: float = Field(
        default=0.02, ge=0, lt=0.5, description="Propensities are clipped to [c, 1] (and [c, 1-c])."
    )
    seed: int = Field(default=0, description="Seed of the models and of the validation split.")


def id_index(frame: pl.DataFrame, key: str, name: str) -> pl.DataFrame:
    return frame.select(key).unique(maintain_order=True).with_row_index(name).with_columns(pl.col(name).cast(pl.Int64))


def fit_relevance(inputs: RankingInputs, params: RelevanceParams, context: PluginContext):
    """Train the debiased relevance model on the training log; return a pair scorer and a
    one-line description of what was fitted."""
    from causalrec_plugins.ranking.relevance_model import (
        DebiasedMF,
        ObservationPropensity,
        PairUniverse,
        SideFeatures,
        build_side_features,
        select_and_fit,
    )

    users, items = id_index(inputs.users, "user_id", "u"), id_index(inputs.items, "item_id", "i")
    train = (
        train_rows(inputs.interactions)
        .join(users, on="user_id", how="inner")
        .join(items, on="item_id", how="inner")
        .filter(pl.col(OUTCOME).is_not_null())
    )
    if train.is_empty():
        raise ValueError("relevance ranking: the training log has no rows with known users, items and outcomes")
    ordered_users = users.join(inputs.users, on="user_id", how="left", maintain_order="left")
    ordered_items = items.join(inputs.items, on="item_id", how="left", maintain_order="left")
    if params.side_features:
        side = build_side_features(ordered_users, ordered_items, inputs.item_embeddings)
    else:
        side = SideFeatures.empty(users.height, items.height)
    side_for_propensity = build_side_features(ordered_users, ordered_items, use_text=False)
    exposed = train.filter(pl.col(TREATMENT).cast(pl.Int64) == 1)
    if exposed.is_empty():
        raise ValueError("relevance ranking: no exposed training rows to learn the outcome of being shown from")
    if exposed.height == train.height:  # rating data: which of all user x item pairs were observed
        universe = PairUniverse(users.height, items.height)
    else:  # which of the logged rows were exposed
        universe = PairUniverse(users.height, items.height, (train["u"].to_numpy(), train["i"].to_numpy()))
    u, i = exposed["u"].to_numpy(), exposed["i"].to_numpy()
    r = exposed[OUTCOME].cast(pl.Float64).to_numpy()
    propensity_model = ObservationPropensity(clip=params.propensity_clip, seed=params.seed).fit(
        u, i, side_for_propensity, universe
    )
    propensity = propensity_model.predict(u, i)
    context.log.info(
        "relevance: %d observed pairs of %d (%s); propensity %.4f–%.4f",
        len(u),
        universe.size,
        "all user x item pairs" if universe.pairs is None else "logged pairs",
        float(propensity.min()),
        float(propensity.max()),
    )
    make = partial(
        DebiasedMF,
        dim=params.mf_dim,
        epochs=params.mf_epochs,
        lr=params.mf_lr,
        side_decay=params.mf_side_decay,
        weighting=params.weighting,
        seed=params.seed,
    )
    model, selection = select_and_fit(
        make,
        list(params.mf_weight_decay),
        u,
        i,
        r,
        side,
        universe,
        propensity,
        valid_share=params.validation_share,
        seed=params.seed,
        log=lambda msg: context.log.info(msg),
    )
    summary = (
        f"{params.weighting} MF (dim {params.mf_dim}, side features {side.user.shape[1]}+{side.item.shape[1]}), "
        f"L2 {selection.weight_decay}, {selection.epochs} epochs"
    )
    context.log.info("relevance model chosen on the validation split: %s", summary)

    def score(pairs: pl.DataFrame) -> pl.DataFrame:
        idx = pairs.select("user_id", "item_id").join(users, on="user_id", how="left", maintain_order="left")
        idx = idx.join(items, on="item_id", how="left", maintain_order="left")
        known = (idx["u"].is_not_null() & idx["i"].is_not_null()).to_numpy()
        preds = np.full(idx.height, model.model_.mu)
        if known.any():
            preds[known] = model.predict(idx["u"].to_numpy()[known], idx["i"].to_numpy()[known])
        return pairs.select("user_id", "item_id").with_columns(pl.Series("score", preds, dtype=pl.Float64))

    return score, summary


class RelevanceRanking(RankingPlugin):
    """Debiased relevance: MF with side features trained with IPS or DR weights."""

    Config = RelevanceParams

    def fit(self, inputs: RankingInputs, context: PluginContext) -> Ranker:
        cfg: RelevanceParams = self.config  # type: ignore[assignment]
        score, _ = fit_relevance(inputs, cfg, context)
        return ScoredRanker(score, inputs.items.select("item_id"), cfg.k)
