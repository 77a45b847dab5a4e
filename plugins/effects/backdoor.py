"""Backdoor-adjusted effects of exposure on outcome, identified from the learned graph: every
built-in estimator over the same adjustment set, the doubly robust one as the headline.

Rows, in order: doubly robust (AIPW with DR-JL-weighted imputation; the headline), the
Bayesian network's do-query (ATE, then one effect per segment of the adjustment set),
inverse-propensity weighting (Horvitz–Thompson and self-normalised) and the naive difference
in means for reference. Intervals: percentile bootstrap over rows (the network is refitted on
each resample).
"""

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


class BackdoorConfig(EstimatorConfig, NetworkConfig):
    """The estimators' settings and the do-query's, one seed for both."""


class BackdoorEffects(EffectsPlugin):
    """AIPW (headline), do-query, IPS / SNIPS and naive estimates of the exposure effect."""

    Config = BackdoorConfig

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        blocked = not_identifiable(inputs, context)
        if blocked is not None:
            return blocked
        rng = np.random.default_rng(cfg.seed)
        adjust = graph_adjustment(inputs, context)
        rows = [estimator_row("doubly_robust", inputs, adjust, cfg, rng)]
        rows += network_rows(inputs, adjust, cfg, rng, context)
        rows += [estimator_row(name, inputs, adjust, cfg, rng) for name in ("ips", "snips")]
        rows.append(estimator_row("naive", inputs, [], cfg, rng))
        return frame(rows)
