"""The effects stage's plugin protocol: the effect of exposure on outcome, from the graph and the pairs."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import polars as pl

from causalrec_assets.plugin_api import Plugin, PluginContext
from causalrec_toolkit.data import EffectInputs, PairFeatures

__all__ = ["EFFECT_COLUMNS", "EffectInputs", "EffectsPlugin", "PairFeatures"]

EFFECT_COLUMNS = ["treatment", "outcome", "estimand", "estimator", "estimate", "ci_low", "ci_high"]


class EffectsPlugin(Plugin):
    """Estimates the effect of the treatment on the outcome; returns rows of EFFECT_COLUMNS,
    the first ``ATE`` row being the headline estimate."""

    stage = "effects"

    @abstractmethod
    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame: ...

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        """The ATE that ``estimator`` (a name this plugin writes in the ``estimator`` column)
        gives on other inputs: what the refutation checks re-run (placebos, halves, an added
        common cause). Optional (since 1.1): the default runs ``estimate`` and reads the row;
        override it to skip the intervals."""
        table = self.estimate(inputs, context)
        rows = table.filter((pl.col("estimand") == "ATE") & (pl.col("estimator") == estimator))
        if rows.is_empty():
            return float("nan")
        value = rows["estimate"][0]
        return float(value) if value is not None else float("nan")

    def diagnostics(self) -> Mapping[str, Any]:
        """Facts about the last ``estimate`` for the materialization's metadata: which row is
        the headline and why, overlap, agreement. Optional (since 1.1); the default has none."""
        return {}
