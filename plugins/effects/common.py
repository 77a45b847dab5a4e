"""What every built-in effects plugin shares: the typed parameters, the adjustment set read
off the graph, the identifiability check, and the bootstrap rows of ``EFFECT_COLUMNS``."""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.bayesnet import adjustment_set, fit_network, interventional
from causalrec_assets.estimators import ESTIMATORS, bootstrap_interval
from causalrec_assets.plugin_api import EFFECT_COLUMNS, EffectInputs, PluginConfig, PluginContext

SCHEMA_OVERRIDES = {"estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}


class EstimatorConfig(PluginConfig):
    n_bootstrap: int = Field(default=200, description="Bootstrap resamples of the rows for the interval.")
    propensity_clip: float = Field(default=0.02, description="Propensities are clipped to [c, 1 - c].")
    seed: int = Field(default=0, description="Seed of the bootstrap.")


class NetworkConfig(PluginConfig):
    network_bootstrap: int = Field(default=20, description="Network refits on resampled rows for the intervals.")
    equivalent_sample_size: float = Field(default=1.0, description="BDeu prior strength for refits.")
    max_segment_levels: int = Field(
        default=8, description="Segment effects for variables with at most this many levels."
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")


def row(treatment: str, outcome: str, estimand: str, estimator: str, est: float, lo: float, hi: float) -> dict:
    return dict(zip(EFFECT_COLUMNS, [treatment, outcome, estimand, estimator, est, lo, hi], strict=True))


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides=SCHEMA_OVERRIDES).select(EFFECT_COLUMNS)


def not_identifiable(inputs: EffectInputs, context: PluginContext) -> pl.DataFrame | None:
    """The single ``not_identifiable`` row when the treatment takes one value, else None."""
    t = inputs.treatment
    if inputs.variables[t].cast(pl.Int64).n_unique() >= 2:
        return None
    context.log.warning(
        "%s takes one value in the training log (e.g. rating data: every logged pair was exposed): the effect "
        "of exposure is not identifiable; the ranker debiases relevance instead",
        t,
    )
    nan = float("nan")
    return frame([row(t, inputs.outcome, "ATE", "not_identifiable", nan, nan, nan)])


def graph_adjustment(inputs: EffectInputs, context: PluginContext) -> list[str]:
    adjust = [
        v for v in adjustment_set(inputs.edges, inputs.treatment, inputs.outcome) if v in inputs.variables.columns
    ]
    context.log.info("adjustment set from the graph: %s", adjust or "empty")
    return adjust


def estimator_row(
    name: str, inputs: EffectInputs, adjust: list[str], cfg: EstimatorConfig, rng: np.random.Generator
) -> dict:
    """One ATE row of a row-level estimator (``ESTIMATORS``) with its bootstrap interval."""
    kwargs = {} if name == "naive" else {"clip": cfg.propensity_clip}
    terms = ESTIMATORS[name](inputs.variables, adjust, inputs.treatment, inputs.outcome, **kwargs)
    lo, hi = bootstrap_interval(terms, cfg.n_bootstrap, rng)
    return row(inputs.treatment, inputs.outcome, "ATE", name, terms.value(), lo, hi)


def network_rows(
    inputs: EffectInputs, adjust: list[str], cfg: NetworkConfig, rng: np.random.Generator, context: PluginContext
) -> list[dict]:
    """ATE and segment effects (one per level of each adjustment variable) by do-query on the
    Bayesian network, with intervals from networks refitted on resampled rows."""
    t, y, data = inputs.treatment, inputs.outcome, inputs.variables
    model = inputs.network if inputs.network is not None else fit_network(data, inputs.edges)
    segments = [
        (var, level)
        for var in adjust
        if data[var].n_unique() <= cfg.max_segment_levels
        for level in sorted(data[var].unique().to_list())
    ]

    def effects(m) -> list[float]:
        out = []
        for evidence in [{}] + [{v: lv} for v, lv in segments]:
            p = interventional(m, t, y, evidence)
            out.append(p.get("1", np.nan) - p.get("0", np.nan))
        return out

    point = effects(model)
    draws = []
    for b in range(cfg.network_bootstrap):
        sample = data[rng.integers(0, data.height, size=data.height)]
        draws.append(effects(fit_network(sample, inputs.edges, cfg.equivalent_sample_size)))
        if (b + 1) % 10 == 0:
            context.log.info("do-query bootstrap %d/%d", b + 1, cfg.network_bootstrap)
    if draws:
        lo, hi = np.nanquantile(np.array(draws), 0.025, axis=0), np.nanquantile(np.array(draws), 0.975, axis=0)
    else:
        lo = hi = np.full(len(point), np.nan)
    names = ["ATE"] + [f"{v}={lv}" for v, lv in segments]
    return [row(t, y, name, "bn_do_query", float(point[k]), float(lo[k]), float(hi[k])) for k, name in enumerate(names)]
