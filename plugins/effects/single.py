"""One plugin per estimator, for a pipeline (or a comparison) that wants just that one: each
adjusts for the backdoor set read off the learned graph, with the interval its library gives."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.effects.protocol import EffectInputs, EffectsPlugin
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_plugins.effects.common import (
    NetworkConfig,
    estimate_row,
    frame,
    graph_adjustment,
    network_rows,
    not_identifiable,
)
from causalrec_plugins.effects.estimators import EstimatorConfig, effect_data, fit_estimate


class _RowEstimator(EffectsPlugin):
    Config = EstimatorConfig
    estimator: ClassVar[str] = ""

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        cfg: EstimatorConfig = self.config  # type: ignore[assignment]
        blocked = not_identifiable(inputs, context)
        if blocked is not None:
            return blocked
        adjust = graph_adjustment(inputs, context) if self.estimator != "naive" else []
        data = effect_data(inputs, adjust, cross=cfg.nuisance == "boosting")
        return frame([estimate_row(inputs, fit_estimate(self.estimator, data, cfg))])

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        return BackdoorEffects(BackdoorConfig(**self.config.model_dump())).reestimate(inputs, estimator, context)


class DRLearnerEffects(_RowEstimator):
    """EconML's doubly robust learner (cross-fitted AIPW) with boosted nuisance models."""

    estimator = "dr_learner"


class WithinUserEffects(_RowEstimator):
    """Doubly robust within each user's log: pairs compared with the same user's pairs of the
    same topic, so what is constant there (a taste, a trait no table holds) cancels."""

    estimator = "within_user"


class LinearDMLEffects(_RowEstimator):
    """EconML's LinearDML: the ATE of a linear effect surface over the adjustment covariates."""

    estimator = "linear_dml"


class CausalForestEffects(_RowEstimator):
    """EconML's CausalForestDML: the forest's ATE with its doubly robust interval."""

    estimator = "causal_forest"


class NaiveEffects(_RowEstimator):
    """The unadjusted difference in means: the confounded reference."""

    estimator = "naive"


class IPSEffects(_RowEstimator):
    """Horvitz-Thompson inverse-propensity weighting (cross-fitted propensities)."""

    estimator = "ips"


class SNIPSEffects(_RowEstimator):
    """Self-normalised inverse-propensity weighting."""

    estimator = "snips"


class NetworkEffects(EffectsPlugin):
    """Do-queries on the fitted Bayesian network: the ATE and one effect per segment."""

    Config = NetworkConfig

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        cfg: NetworkConfig = self.config  # type: ignore[assignment]
        blocked = not_identifiable(inputs, context)
        if blocked is not None:
            return blocked
        adjust = graph_adjustment(inputs, context)
        return frame(network_rows(inputs, adjust, cfg, np.random.default_rng(cfg.seed), context))

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        return BackdoorEffects(BackdoorConfig(**self.config.model_dump())).reestimate(inputs, estimator, context)
