"""Backdoor-adjusted effects of exposure on outcome, identified from the learned graph.

Four estimators over the same adjustment set: doubly robust (AIPW, the headline), the
Bayesian network's do-query, inverse-propensity weighting (Horvitz–Thompson and
self-normalised), and the naive difference in means for reference. Segment effects come
from do-queries with evidence on the adjustment-set variables. Intervals: percentile
bootstrap (the network is refitted on each resample).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.bayesnet import adjustment_set, fit_network, interventional
from causalrec_assets.estimators import aipw
from causalrec_assets.plugin_api import (
    EFFECT_COLUMNS,
    EffectInputs,
    EffectsPlugin,
    PluginConfig,
    PluginContext,
)


class BackdoorConfig(PluginConfig):
    n_bootstrap: int = Field(default=200, description="Resamples for the AIPW, IPS and naive intervals.")
    network_bootstrap: int = Field(default=20, description="Network refits for the do-query intervals.")
    propensity_clip: float = Field(default=0.02, description="Propensities are clipped to [c, 1 - c].")
    equivalent_sample_size: float = Field(default=1.0, description="BDeu prior strength for refits.")
    max_segment_levels: int = Field(
        default=8, description="Segment effects for variables with at most this many levels."
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")


def _bootstrap_mean(values: np.ndarray, n: int, rng: np.random.Generator) -> tuple[float, float]:
    if n <= 0 or values.size == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, values.size, size=(n, values.size))
    means = values[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _row(treatment: str, outcome: str, estimand: str, estimator: str, est: float, lo: float, hi: float) -> dict:
    return dict(zip(EFFECT_COLUMNS, [treatment, outcome, estimand, estimator, est, lo, hi], strict=True))


class BackdoorEffects(EffectsPlugin):
    """AIPW (headline), do-query, IPS / SNIPS and naive estimates of the exposure effect."""

    Config = BackdoorConfig

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        t, y, data = inputs.treatment, inputs.outcome, inputs.variables
        rng = np.random.default_rng(cfg.seed)
        treated = data[t].cast(pl.Int64).to_numpy()
        outcome = data[y].cast(pl.Int64).to_numpy().astype(float)
        if len(np.unique(treated)) < 2:
            context.log.warning("%s takes one value in the training log: its effect is not identifiable", t)
            nan = float("nan")
            return pl.DataFrame([_row(t, y, "ATE", "not_identifiable", nan, nan, nan)])
        adjust = adjustment_set(inputs.edges, t, y)
        context.log.info("adjustment set from the graph: %s", adjust or "empty")
        nuisance = aipw(data, adjust, t, y, cfg.propensity_clip)
        e, psi = nuisance.propensity, nuisance.psi
        ht = treated * outcome / e - (1 - treated) * outcome / (1 - e)
        w1, w0 = treated / e, (1 - treated) / (1 - e)
        snips = float((w1 * outcome).sum() / w1.sum() - (w0 * outcome).sum() / w0.sum())
        naive = float(outcome[treated == 1].mean() - outcome[treated == 0].mean())

        rows = [_row(t, y, "ATE", "doubly_robust", float(psi.mean()), *_bootstrap_mean(psi, cfg.n_bootstrap, rng))]
        rows += self._network_rows(inputs, adjust, rng, context)
        rows.append(_row(t, y, "ATE", "ips", float(ht.mean()), *_bootstrap_mean(ht, cfg.n_bootstrap, rng)))
        rows.append(_row(t, y, "ATE", "snips", snips, *self._snips_interval(treated, outcome, e, rng)))
        rows.append(_row(t, y, "ATE", "naive", naive, *self._naive_interval(treated, outcome, rng)))
        return pl.DataFrame(
            rows, schema_overrides={"estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}
        )

    def _network_rows(self, inputs: EffectInputs, adjust: list[str], rng, context: PluginContext) -> list[dict]:
        """ATE and segment effects by do-query, with intervals from refitted networks."""
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
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
        draws_arr = np.array(draws) if draws else np.full((1, len(point)), np.nan)
        lo = np.nanquantile(draws_arr, 0.025, axis=0) if draws else draws_arr[0]
        hi = np.nanquantile(draws_arr, 0.975, axis=0) if draws else draws_arr[0]
        names = ["ATE"] + [f"{v}={lv}" for v, lv in segments]
        return [
            _row(t, y, name, "bn_do_query", float(point[k]), float(lo[k]), float(hi[k])) for k, name in enumerate(names)
        ]

    def _snips_interval(self, treated, outcome, e, rng) -> tuple[float, float]:
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        stats = []
        for _ in range(cfg.n_bootstrap):
            i = rng.integers(0, treated.size, size=treated.size)
            w1, w0 = treated[i] / e[i], (1 - treated[i]) / (1 - e[i])
            stats.append((w1 * outcome[i]).sum() / w1.sum() - (w0 * outcome[i]).sum() / w0.sum())
        return (float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))) if stats else (np.nan, np.nan)

    def _naive_interval(self, treated, outcome, rng) -> tuple[float, float]:
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        stats = []
        for _ in range(cfg.n_bootstrap):
            i = rng.integers(0, treated.size, size=treated.size)
            tt, yy = treated[i], outcome[i]
            stats.append(yy[tt == 1].mean() - yy[tt == 0].mean())
        return (float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))) if stats else (np.nan, np.nan)
