"""Backdoor-adjusted effects of exposure on outcome, identified from the learned graph: every
configured estimator over the same adjustment set, the headline chosen by the rule in
``causalrec_plugins.effects.headline``.

Rows, in order: the headline, the other ATE estimates (default: the doubly robust (AIPW)
estimate with boosted nuisance models cross-fitted by user, its scores summed user shard by
user shard; the doubly robust comparison within each user's log, the Bayesian network's
do-query, SNIPS, IPS and the naive difference in means), then the do-query's segment effects.
Row-level
estimators see the covariates as the data has them (numbers as numbers, text components,
taste); the do-query sees the discrete variables, and its estimand says so where the network's
outcome is a binarised one (``ATE[outcome>=4]``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from causalrec_assets.plugin_api import EffectInputs, PluginContext
from causalrec_plugins.effects.common import (
    AdjustedEffects,
    NetworkConfig,
    binarised_label,
    estimate_row,
    graph_adjustment,
    network_effect,
    network_rows,
)
from causalrec_plugins.effects.estimators import (
    Estimate,
    EstimatorConfig,
    doubly_robust,
    effect_data,
    fit_estimate,
)
from causalrec_plugins.effects.headline import choose_headline, slice_estimate
from causalrec_toolkit.bayesnet import fit_network
from causalrec_toolkit.counts import count_table

ESTIMATORS = ("dr_learner", "within_user", "causal_forest", "linear_dml", "snips", "ips", "bn_do_query", "naive")
DEFAULT_ESTIMATORS = ["dr_learner", "within_user", "bn_do_query", "snips", "ips", "naive"]
SHARED = ("dr_learner", "ips", "snips", "within_user")  # read the nuisance models and sums fitted once


class BackdoorConfig(EstimatorConfig, NetworkConfig):
    """The estimators to run, their settings and the do-query's."""

    estimators: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ESTIMATORS),
        description=f"The estimators to run, of {', '.join(ESTIMATORS)} (the headline is chosen among them; "
        "'causal_forest' and 'linear_dml' are EconML's too, and slower).",
    )

    @field_validator("estimators")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in ESTIMATORS]
        if unknown:
            raise ValueError(f"unknown estimator(s) {unknown}; known: {', '.join(ESTIMATORS)}")
        if not names:
            raise ValueError("estimators must name at least one estimator")
        return names


class BackdoorEffects(AdjustedEffects):
    """Every configured estimator over the graph's backdoor set; the headline by a documented rule."""

    Config = BackdoorConfig

    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame:
        self.diagnostics_: dict[str, Any] = {}
        return super().estimate(inputs, context)

    def not_identified(self, blocked: pl.DataFrame) -> pl.DataFrame:
        self.diagnostics_ = {"headline": "not_identifiable", "headline_reason": "exposure takes one value"}
        return blocked

    def rows(self, inputs: EffectInputs, adjust: list[str], context: PluginContext) -> list[dict]:
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        data = effect_data(inputs, adjust, cross=cfg.nuisance == "boosting")
        compute = context.resources.get("compute")
        start = time.perf_counter()
        fitted = doubly_robust(data, cfg, compute)  # nuisances once; scores summed by user shard
        context.log.info(
            "doubly robust scores of %d rows summed over %s (%.1f s)",
            len(data.t),
            compute.describe() if compute is not None else "one process",
            time.perf_counter() - start,
        )
        estimates: list[Estimate] = []
        rows: dict[str, dict] = {}
        segments: list[dict] = []
        for name in dict.fromkeys(cfg.estimators):
            begun = time.perf_counter()
            if name == "bn_do_query":
                network = network_rows(inputs, adjust, cfg, np.random.default_rng(cfg.seed), context)
                head, segments = network[0], network[1:]
                rows[name] = head
                if head["estimand"] == "ATE":  # the network's outcome is the data's: comparable
                    estimates.append(Estimate(name, head["estimate"], head["ci_low"], head["ci_high"]))
            elif name == "within_user" and data.units is None:
                context.log.info("within_user skipped: the effect inputs carry no row-level features with users")
                continue
            else:
                own = effect_data(inputs, []) if name == "naive" else data
                extra = {"fitted": fitted} if name in SHARED else {}
                extra |= {"compute": compute} if name == "within_user" else {}
                estimate = fit_estimate(name, own, cfg, **extra)
                rows[name] = estimate_row(inputs, estimate)
                if name != "naive":
                    estimates.append(estimate)
            context.log.info("%s: %+.4f (%.1f s)", name, rows[name]["estimate"], time.perf_counter() - begun)
        choice = choose_headline(estimates, fitted.overlap(), slice_estimate(inputs.test))
        order = [n for n in rows if n == choice.estimator] + [n for n in rows if n != choice.estimator]
        self.diagnostics_ = {
            "headline": order[0],
            "headline_reason": choice.reason,
            "adjustment_set": ", ".join(adjust) or "empty",
            "covariates": len(data.columns),
            "nuisance_models": cfg.nuisance,
            "estimation_seconds": round(time.perf_counter() - start, 2),
            **choice.diagnostics,
        }
        return [rows[n] for n in order] + segments

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        """One estimator's point estimate, no interval (what refutation re-runs)."""
        cfg: BackdoorConfig = self.config  # type: ignore[assignment]
        adjust = graph_adjustment(inputs)
        if estimator == "bn_do_query":
            label = binarised_label(inputs)
            model = fit_network(count_table(inputs.variables), inputs.edges, cfg.equivalent_sample_size)
            return float(network_effect(model, inputs)) if label == "" else float("nan")
        if estimator == "naive":
            return fit_estimate("naive", effect_data(inputs, []), cfg).estimate
        extra = {"with_interval": False} if estimator not in ("ips", "snips") else {}
        data = effect_data(inputs, adjust, cross=cfg.nuisance == "boosting")
        return fit_estimate(estimator, data, cfg, **extra).estimate

    def diagnostics(self) -> dict[str, Any]:
        return dict(getattr(self, "diagnostics_", {}))
