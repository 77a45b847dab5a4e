"""One plugin per estimator, for a pipeline (or a comparison) that wants just that one: each
adjusts for the backdoor set read off the learned graph and bootstraps its interval."""

from __future__ import annotations

import numpy as np
import polars as pl

from causalrec_assets.plugin_api import EffectInputs, EffectsPlugin, PluginContext
from causalrec_plugins.effects.common import (
    EstimatorConfig,
    NetworkConfig,
    estimator_row,
    frame,
    graph_adjustment,
    network_rows,
    not_identifiable,
)


class _RowEstimator(EffectsPlugin):
    Config = EstimatorConfig
    estimator: str = ""

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        cfg: EstimatorConfig = self.config  # type: ignore[assignment]
        blocked = not_identifiable(inputs, context)
        if blocked is not None:
            return blocked
        adjust = graph_adjustment(inputs, context) if self.estimator != "naive" else []
        return frame([estimator_row(self.estimator, inputs, adjust, cfg, np.random.default_rng(cfg.seed))])


class NaiveEffects(_RowEstimator):
    """The unadjusted difference in means: the confounded reference."""

    estimator = "naive"


class IPSEffects(_RowEstimator):
    """Horvitz–Thompson inverse-propensity weighting (calibrated, clipped propensities)."""

    estimator = "ips"


class SNIPSEffects(_RowEstimator):
    """Self-normalised inverse-propensity weighting."""

    estimator = "snips"


class DoublyRobustEffects(_RowEstimator):
    """AIPW with DR-JL-weighted imputation models."""

    estimator = "doubly_robust"


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
