"""One plugin per estimator, for a pipeline (or a comparison) that wants just that one: each
adjusts for the backdoor set read off the learned graph, with the interval its library gives."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from causalrec_assets.plugin_api import EffectInputs, PluginContext
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_plugins.effects.common import AdjustedEffects, NetworkConfig, estimate_row, network_rows
from causalrec_plugins.effects.estimators import EstimatorConfig, effect_data, fit_estimate


class _SingleEstimator(AdjustedEffects):
    """A plugin of one estimator: re-estimation (what refutation re-runs) is the backdoor
    plugin's, so every estimator's point estimate has one implementation."""

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        return BackdoorEffects(BackdoorConfig(**self.config.model_dump())).reestimate(inputs, estimator, context)


class _RowEstimator(_SingleEstimator):
    """A row-level estimator of ``causalrec_plugins.effects.estimators``, named by the class
    keyword ``estimator`` (``class IPSEffects(_RowEstimator, estimator="ips")``)."""

    Config = EstimatorConfig
    estimator: ClassVar[str] = ""

    def __init_subclass__(cls, estimator: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.estimator = estimator or cls.estimator

    def adjustment(self, inputs: EffectInputs, context: PluginContext) -> list[str]:
        return super().adjustment(inputs, context) if self.estimator != "naive" else []

    def rows(self, inputs: EffectInputs, adjust: list[str], context: PluginContext) -> list[dict]:
        cfg: EstimatorConfig = self.config  # type: ignore[assignment]
        data = effect_data(inputs, adjust, cross=cfg.nuisance == "boosting")
        return [estimate_row(inputs, fit_estimate(self.estimator, data, cfg))]


class DRLearnerEffects(_RowEstimator, estimator="dr_learner"):
    """EconML's doubly robust learner (cross-fitted AIPW) with boosted nuisance models."""


class WithinUserEffects(_RowEstimator, estimator="within_user"):
    """Doubly robust within each user's log: pairs compared with the same user's pairs of the
    same topic, so what is constant there (a taste, a trait no table holds) cancels."""


class LinearDMLEffects(_RowEstimator, estimator="linear_dml"):
    """EconML's LinearDML: the ATE of a linear effect surface over the adjustment covariates."""


class CausalForestEffects(_RowEstimator, estimator="causal_forest"):
    """EconML's CausalForestDML: the forest's ATE with its doubly robust interval."""


class NaiveEffects(_RowEstimator, estimator="naive"):
    """The unadjusted difference in means: the confounded reference."""


class IPSEffects(_RowEstimator, estimator="ips"):
    """Horvitz-Thompson inverse-propensity weighting (cross-fitted propensities)."""


class SNIPSEffects(_RowEstimator, estimator="snips"):
    """Self-normalised inverse-propensity weighting."""


class NetworkEffects(_SingleEstimator):
    """Do-queries on the fitted Bayesian network: the ATE and one effect per segment."""

    Config = NetworkConfig

    def rows(self, inputs: EffectInputs, adjust: list[str], context: PluginContext) -> list[dict]:
        cfg: NetworkConfig = self.config  # type: ignore[assignment]
        return network_rows(inputs, adjust, cfg, np.random.default_rng(cfg.seed), context)
