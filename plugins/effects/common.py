"""What every built-in effects plugin shares: the adjustment set read off the graph, the
identifiability check, the Bayesian network's do-query rows, and rows of ``EFFECT_COLUMNS``."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.plugin_api import EFFECT_COLUMNS, EffectInputs, EffectsPlugin, PluginConfig, PluginContext
from causalrec_plugins.effects.estimators import Estimate
from causalrec_toolkit.bayesnet import adjustment_set, fit_network, interventional
from causalrec_toolkit.counts import count_table, resample_counts

SCHEMA_OVERRIDES = {"estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}


class NetworkConfig(PluginConfig):
    network_bootstrap: int = Field(
        default=10, ge=0, description="Network refits on resampled rows; their spread gives the intervals."
    )
    equivalent_sample_size: float = Field(default=1.0, gt=0, description="BDeu prior strength for refits.")
    max_segment_levels: int = Field(
        default=8, ge=0, description="Segment effects for variables with at most this many levels."
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")


def row(treatment: str, outcome: str, estimand: str, estimator: str, est: float, lo: float, hi: float) -> dict:
    return dict(zip(EFFECT_COLUMNS, [treatment, outcome, estimand, estimator, est, lo, hi], strict=True))


def estimate_row(inputs: EffectInputs, estimate: Estimate) -> dict:
    """An ATE row on the outcome's own scale."""
    return row(
        inputs.treatment,
        inputs.outcome,
        "ATE",
        estimate.estimator,
        estimate.estimate,
        estimate.ci_low,
        estimate.ci_high,
    )


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides=SCHEMA_OVERRIDES).select(EFFECT_COLUMNS)


def not_identifiable(inputs: EffectInputs, context: PluginContext) -> pl.DataFrame | None:
    """The single ``not_identifiable`` row when the treatment takes one value, else None."""
    t = inputs.treatment
    for name in (t, inputs.outcome):
        if name not in inputs.variables.columns:
            raise KeyError(
                f"the variable table has no {name!r} column (columns: {', '.join(inputs.variables.columns)})"
            )
    if inputs.variables[t].cast(pl.Int64).n_unique() >= 2:
        return None
    context.log.warning(
        "%s takes one value in the training log (e.g. rating data: every logged pair was exposed): the effect "
        "of exposure is not identifiable; the ranker debiases relevance instead",
        t,
    )
    nan = float("nan")
    return frame([row(t, inputs.outcome, "ATE", "not_identifiable", nan, nan, nan)])


def graph_adjustment(inputs: EffectInputs, context: PluginContext | None = None) -> list[str]:
    adjust = [
        v for v in adjustment_set(inputs.edges, inputs.treatment, inputs.outcome) if v in inputs.variables.columns
    ]
    if context is not None:
        context.log.info("adjustment set from the graph: %s", adjust or "empty")
    return adjust


def binarised_label(inputs: EffectInputs) -> str:
    """How the network's outcome relates to the data's: empty when it is the outcome itself
    (0/1 data), else ``[outcome>=t]``, so its estimands say they are on a binarised outcome."""
    features = inputs.features
    if features is None or features.binary_outcome:
        return ""
    return f"[{inputs.outcome}>={features.outcome_threshold:g}]"


def network_effect(model, inputs: EffectInputs, evidence: dict | None = None) -> float:
    p = interventional(model, inputs.treatment, inputs.outcome, evidence or {})
    return p.get("1", np.nan) - p.get("0", np.nan)


def network_rows(
    inputs: EffectInputs, adjust: list[str], cfg: NetworkConfig, rng: np.random.Generator, context: PluginContext
) -> list[dict]:
    """ATE and segment effects (one per level of each adjustment variable) by do-query on the
    Bayesian network, with intervals from networks refitted on bootstrap resamples of the log,
    drawn as multinomial counts over the variable table's distinct rows (``count_table``)."""
    t, y, data = inputs.treatment, inputs.outcome, inputs.variables
    counts = count_table(data)
    model = inputs.network if inputs.network is not None else fit_network(counts, inputs.edges)
    segments = [
        (var, level)
        for var in adjust
        if data[var].n_unique() <= cfg.max_segment_levels
        for level in sorted(data[var].unique().to_list())
    ]

    def effects(m) -> list[float]:
        return [network_effect(m, inputs, evidence) for evidence in [{}] + [{v: lv} for v, lv in segments]]

    point = np.array(effects(model))
    draws = []
    for b in range(cfg.network_bootstrap):
        sample = resample_counts(counts, rng, "bootstrap", 1.0)
        draws.append(effects(fit_network(sample, inputs.edges, cfg.equivalent_sample_size)))
        if (b + 1) % 10 == 0:
            context.log.info("do-query bootstrap %d/%d", b + 1, cfg.network_bootstrap)
    if len(draws) >= 2:  # a normal interval from the refits' spread: steadier than percentiles of a few
        spread = np.nanstd(np.array(draws), axis=0, ddof=1)
        lo, hi = point - 1.96 * spread, point + 1.96 * spread
    else:
        lo = hi = np.full(len(point), np.nan)
    label = binarised_label(inputs)
    names = [f"ATE{label}"] + [f"{v}={lv}{label}" for v, lv in segments]
    return [row(t, y, name, "bn_do_query", float(point[k]), float(lo[k]), float(hi[k])) for k, name in enumerate(names)]


class AdjustedEffects(EffectsPlugin):
    """The ``estimate`` every built-in effects plugin shares: the single ``not_identifiable`` row
    where exposure takes one value, else the subclass's ``rows`` over the graph's adjustment set,
    as a table of ``EFFECT_COLUMNS``. Written once, so a plugin is only its own estimators."""

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        blocked = not_identifiable(inputs, context)
        if blocked is not None:
            return self.not_identified(blocked)
        return frame(self.rows(inputs, self.adjustment(inputs, context), context))

    def adjustment(self, inputs: EffectInputs, context: PluginContext) -> list[str]:
        """The variables to adjust for: the graph's backdoor set (logged)."""
        return graph_adjustment(inputs, context)

    def not_identified(self, blocked: pl.DataFrame) -> pl.DataFrame:
        """The table when the effect is not identifiable; a hook to record why."""
        return blocked

    @abstractmethod
    def rows(self, inputs: EffectInputs, adjust: list[str], context: PluginContext) -> list[dict]:
        """The plugin's rows of ``EFFECT_COLUMNS``, the headline ATE first."""
