"""Uplift ranking: items by what showing them does for *this* user, E[y | do(shown), x] -
E[y | do(not shown), x], for logs that record outcomes of unexposed pairs too.

x describes the pair as the data has it: the user's taste (the mean text embedding of what
they engaged with, cross-fitted), the item's text components, their affinity, and the
attributes of both (see ``causalrec_toolkit.features``). By default the uplift is EconML's DR
learner: doubly robust pseudo-outcomes from boosted, cross-fitted propensity and outcome
models, regressed on x by a shallow boosted model, so two users with the same attributes get
different lists when their histories differ. The Bayesian network's do-query is the
segment-level alternative (one value per cell of the outcome's parents in the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import (
    CandidateConfig,
    CandidateRanker,
    PluginContext,
    ProfileRanker,
    Ranker,
    RankingInputs,
    RankingPlugin,
    ScoredRanker,
)
from causalrec_plugins.effects.estimators import EffectData, EstimatorConfig, fitting, with_cell
from causalrec_plugins.effects.nuisance import effect_model, nuisance_models
from causalrec_toolkit.bayesnet import adjustment_set, interventional
from causalrec_toolkit.explain import MAX_GROUPS, column_groups, group_shapley, top_contributions
from causalrec_toolkit.features import PairFeaturizer, feature_groups
from causalrec_toolkit.sampling import sample_rows
from causalrec_toolkit.variables import OUTCOME, TREATMENT

UpliftModel = Literal["dr_learner", "bn_do_query"]
UPLIFT_MODEL_HELP = (
    "How a pair's uplift is estimated: 'dr_learner' (EconML's DR learner on the user's taste, the item's text and "
    "the attributes: personal) or 'bn_do_query' (the Bayesian network per cell of the outcome's parents)."
)

PairScorer = Callable[[pl.DataFrame], pl.DataFrame]
BACKGROUND_ROWS = 16  # training rows the explanations' Shapley values are taken against


@dataclass
class UpliftScorer:
    """Scores pairs by the fitted DR learner's effect model on their features (only the
    columns it reads), in chunks; ``for_users`` keeps the featurizer's state of some users only."""

    featurizer: PairFeaturizer
    columns: list[str]
    effect: Any  # the DR learner's final model: x -> uplift
    background: np.ndarray | None = None  # training rows of the columns: what "typical" means in explanations
    chunk: int = 200_000
    modifiers_per_pair: int = 3

    def __call__(self, pairs: pl.DataFrame) -> pl.DataFrame:
        keys = pairs.select("user_id", "item_id")
        if not keys.height:
            return keys.with_columns(pl.lit(None, pl.Float64).alias("score"))
        parts = []
        for start in range(0, keys.height, self.chunk):  # bounded memory on large candidate sets
            chunk = self.featurizer.transform(keys.slice(start, self.chunk), self.columns).select(self.columns)
            with fitting():
                parts.append(np.ravel(self.effect.predict(chunk.to_numpy().astype(np.float64))))
        return keys.with_columns(pl.Series("score", np.concatenate(parts), dtype=pl.Float64))

    def for_users(self, users: pl.DataFrame) -> UpliftScorer:
        return replace(self, featurizer=self.featurizer.for_users(users))

    def explain(self, pairs: pl.DataFrame) -> pl.DataFrame | None:
        """The effect modifiers behind each pair's predicted uplift: Shapley values of the effect
        model's feature groups (an attribute, the item's text, the user's taste and history)
        against the background rows, the ``modifiers_per_pair`` largest per pair."""
        if self.background is None:
            return None
        keys = pairs.select("user_id", "item_id")
        x = self.featurizer.transform(keys, self.columns).select(self.columns).to_numpy().astype(np.float64)
        names, groups = column_groups(self.columns, feature_groups(self.columns), MAX_GROUPS)

        def predict(rows: np.ndarray) -> np.ndarray:
            with fitting():
                return np.ravel(self.effect.predict(rows))

        top = top_contributions(group_shapley(predict, x, self.background, groups), names, self.modifiers_per_pair)
        per_pair = [len(t) for t in top]
        return keys.select(pl.all().repeat_by(pl.Series(per_pair)).explode()).with_columns(
            pl.Series("modifier", [name for t in top for name, _ in t], dtype=pl.Utf8),
            pl.Series("contribution", [value for t in top for _, value in t], dtype=pl.Float64),
        )


def user_profiles(featurizer: PairFeaturizer, columns: list[str], users: pl.DataFrame) -> pl.DataFrame | None:
    """``user_id, profile`` for every user of ``users`` when every column is the user's or the
    item's own (no pair-level taste, affinity or history), else None. Users the featurizer has
    not seen share the profile of missing values, as their features do."""
    known, items = featurizer.users_, featurizer.items_
    assert known is not None and items is not None, "fit the featurizer first"
    own = [c for c in columns if c in known.columns]
    if len(own) + sum(c in items.columns for c in columns) != len(columns):
        return None
    if not own:
        return users.select("user_id", pl.lit(0, pl.UInt32).alias("profile"))
    rows = users.select("user_id").join(known.select("user_id", *own), on="user_id", how="left")
    distinct = rows.select(own).unique(maintain_order=True).with_row_index("profile")
    return rows.join(distinct, on=own, how="left", nulls_equal=True).select("user_id", "profile")


def uplift_ranker(
    score: PairScorer,
    inputs: RankingInputs,
    cfg: CandidateConfig,
    context: PluginContext,
    profiles: pl.DataFrame | None = None,
) -> Ranker:
    """The ranker over ``score``: exact over user profiles (``profiles``) where the score allows
    it, every unseen item of a small catalogue, else each user's candidates
    (``causalrec_toolkit.retrieval``)."""
    users, items, k = inputs.users, inputs.items, cfg.k
    if profiles is not None:
        context.log.info(
            "uplift ranking over %d user profiles x %d items (exact top-%d, not %d x %d pairs)",
            profiles["profile"].n_unique(),
            items.height,
            k,
            users.height,
            items.height,
        )
        return ProfileRanker.fit(score, profiles, items, k)
    if cfg.per_user * 2 >= items.height:
        context.log.info("uplift ranking of every unseen item (%d items: a small catalogue)", items.height)
        return ScoredRanker(score, items.select("item_id"), k)
    ranker = CandidateRanker.fit(
        score, users, items, inputs.interactions, inputs.user_embeddings, inputs.item_embeddings, cfg
    )
    context.log.info(
        "uplift ranking of each user's candidates, up to %d per user (nearest %d, neighbour %d, prior %d, explore %d)",
        cfg.per_user,
        cfg.nearest_candidates,
        cfg.neighbour_candidates,
        cfg.prior_candidates,
        cfg.explore_candidates,
    )
    return ranker


class UpliftConfig(CandidateConfig, EstimatorConfig):
    """``k`` and the candidates per user, the cross-fitting settings the effects stage's
    estimators share (nuisance models, folds, propensity clip, seed), and the uplift model."""

    uplift_model: UpliftModel = Field(default="dr_learner", description=UPLIFT_MODEL_HELP)
    uplift_rows: int = Field(
        default=2_000_000,
        ge=0,
        description="The DR learner is fitted on at most this many training pairs, drawn at random (0: all). Its "
        "nuisance models see at most nuisance_rows of them; its effect model sees them all: the uplift is a small "
        "signal in noisy doubly robust scores (fitted on 250,000 of them, the top-10 lists of a 100,000-user world "
        "caught 0.59 of the oracle's uplift on one sample, 0.94 on another).",
    )


def effect_modifiers(edges: list[tuple[str, str]], available: list[str]) -> list[str]:
    """The discrete variables a pair's uplift can depend on under the graph: the outcome's
    parents (besides exposure), else the adjustment set."""
    parents_y = [a for a, b in edges if b == OUTCOME and a != TREATMENT and a in available]
    return parents_y or [v for v in adjustment_set(edges) if v in available]


@dataclass
class NetworkUplift:
    """Scores pairs by the network's do-query uplift, one query per distinct cell of the
    outcome's parents."""

    encoder: Any  # the fitted VariableEncoder
    network: Any
    edges: list[tuple[str, str]]

    def __call__(self, pairs: pl.DataFrame) -> pl.DataFrame:
        features = self.encoder.pair_features(pairs)
        modifiers = effect_modifiers(self.edges, features.columns)
        frame = pl.concat([pairs.select("user_id", "item_id"), features.select(modifiers)], how="horizontal")
        cells = frame.select(modifiers).unique() if modifiers else pl.DataFrame({"_": [0]})
        uplift = []
        for row in cells.iter_rows(named=True):
            p = interventional(self.network, evidence={k: v for k, v in row.items() if k != "_"})
            uplift.append(p.get("1", 0.0) - p.get("0", 0.0))
        cells = cells.with_columns(pl.Series("score", uplift, dtype=pl.Float64))
        if not modifiers:
            return frame.with_columns(pl.lit(uplift[0]).alias("score")).select("user_id", "item_id", "score")
        return frame.join(cells, on=modifiers, how="left", maintain_order="left").select("user_id", "item_id", "score")


def featurizer_of(inputs: RankingInputs) -> PairFeaturizer:
    """The pipeline's fitted featurizer, or one fitted here on the ranking inputs."""
    if inputs.pair_featurizer is not None:
        return inputs.pair_featurizer
    embeddings = inputs.item_embeddings if "embedding" in inputs.item_embeddings.columns else None
    return PairFeaturizer().fit(inputs.users, inputs.items, train_rows(inputs.interactions), embeddings)


def personal_uplift_model(inputs: RankingInputs, cfg: UpliftConfig) -> tuple[UpliftScorer, pl.DataFrame | None]:
    """A scorer of pairs: EconML's DR learner fitted on the training log. Its effect model sees
    the features of the outcome's causes in the graph (with ``affinity``, the user's taste and
    history); its nuisance models see those and the rest of the graph's adjustment set. Also
    the users' profiles where the score depends on users through their own features only."""
    from econml.dr import DRLearner
    from sklearn.model_selection import KFold

    featurizer = featurizer_of(inputs)
    names, groups = featurizer.feature_names, featurizer.groups

    def columns_for(variables: list[str]) -> list[str]:  # as PairFeatures.columns_for
        wanted = {c for v in variables for c in groups.get(v, [])}
        return [c for c in names if c in wanted]

    modifiers = effect_modifiers(inputs.edges, list(groups))
    columns = columns_for(modifiers) or names
    adjust = [c for c in columns_for(adjustment_set(inputs.edges)) if c not in columns]
    logged = train_rows(inputs.interactions)
    rows = sample_rows(logged.height, cfg.uplift_rows, cfg.seed)  # a large log: a random sample of its pairs
    logged = logged if rows is None else logged[rows]
    train = featurizer.features(logged, columns + adjust)  # only the columns read
    x, t, y = train.arrays(columns + adjust)
    categorical = [c in set(train.categorical) for c in columns + adjust]
    data = EffectData(x, t, y, categorical, columns + adjust)
    crossed = with_cell(data) if cfg.nuisance == "boosting" else data
    # X: what the effect may vary with (the outcome's causes); W: the rest of the adjustment, and the cell
    w = crossed.w[:, len(columns) :] if crossed.w.shape[1] > len(columns) else None
    x = crossed.w[:, : len(columns)]
    propensity, regression = nuisance_models(
        cfg.nuisance, train.binary_outcome, crossed.categorical, cfg.seed, cfg.nuisance_rows
    )
    model = DRLearner(
        model_propensity=propensity,
        model_regression=regression,
        model_final=effect_model(cfg.seed, len(y), max_rows=0),  # every sampled pair: the uplift is a small signal
        discrete_outcome=train.binary_outcome,
        cv=KFold(cfg.folds, shuffle=True, random_state=cfg.seed),
        min_propensity=max(cfg.propensity_clip, 1e-6),
        random_state=cfg.seed,
    )
    with fitting():
        model.fit(y, t, X=x, W=w)

    background = x[np.random.default_rng(cfg.seed).choice(len(x), min(len(x), BACKGROUND_ROWS), replace=False)]
    scorer = UpliftScorer(featurizer, columns, model.model_cate(T=1), background)
    return scorer, user_profiles(featurizer, columns, inputs.users)


def has_unexposed_outcomes(interactions: pl.DataFrame) -> bool:
    return train_rows(interactions)[TREATMENT].cast(pl.Int64).n_unique() > 1


def uplift_scorer(inputs: RankingInputs, cfg: UpliftConfig) -> tuple[PairScorer, pl.DataFrame | None]:
    """The uplift scorer the config names, and the users' profiles where it allows exact top-K."""
    if not has_unexposed_outcomes(inputs.interactions):
        raise ValueError(
            "uplift ranking needs training rows with exposure = 0 and their outcomes; this log has one exposure "
            "value only (rating data): use the 'relevance' or 'causal' ranker"
        )
    if cfg.uplift_model == "bn_do_query":
        return NetworkUplift(inputs.variable_encoder, inputs.network, inputs.edges), None
    return personal_uplift_model(inputs, cfg)


class UpliftRanking(RankingPlugin):
    """Ranks by estimated personal uplift (EconML's DR learner) or the network's do-query."""

    Config = UpliftConfig

    def fit(self, inputs: RankingInputs, context: PluginContext) -> Ranker:
        cfg: UpliftConfig = self.config  # type: ignore[assignment]
        score, profiles = uplift_scorer(inputs, cfg)
        return uplift_ranker(score, inputs, cfg, context, profiles)
