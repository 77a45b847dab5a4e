"""The effects stage: the effect of exposure on outcome identified from the learned graph,
refuted in the same step.

The refutation checks re-run the headline's own estimator, so they run where the effects
plugin and its inputs already are: inside ``treatment_effects``, as its checks. Whether a
failed refutation blocks what is downstream is fixed when the definitions load
(``CAUSALREC_REFUTATION``: ``warn``, the default, or ``block``), so the check is labelled as it
behaves: ``warn`` checks are non-blocking and a refuted headline is flagged on
``recommendations``; ``block`` checks are blocking and fail with ERROR severity.
"""

import time
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from causalrec_assets import metadata as md
from causalrec_assets.metadata import OWNERS
from causalrec_assets.registry import get_registry
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.effects.inputs import effect_inputs
from causalrec_assets.stages.effects.protocol import EffectInputs, EffectsPlugin
from causalrec_resources.compute import ComputeResource
from causalrec_resources.settings import current_settings
from causalrec_toolkit import Sensitivity, sensitivity
from causalrec_toolkit.refutation import REFUTATION_ROWS, REFUTERS, adjusted_rows, run_refutations

EffectsStageConfig = stage_config_class("effects")
BLOCKING = current_settings().refutation == "block"
REFUTED = "refuted"  # the treatment_effects metadata key that ranking reads


class RefutationConfig(dg.Config):
    """How the refutation checks of ``treatment_effects`` judge."""

    n_simulations: int = Field(default=1, ge=1, description="Placebo draws (of each kind) and random common causes.")
    n_splits: int = Field(default=1, ge=1, description="Random halves of the log, each re-estimated.")
    abs_tolerance: float = Field(default=0.005, ge=0, description="Smallest tolerance, whatever the interval's width.")
    max_rows: int = Field(
        default=REFUTATION_ROWS,
        ge=1000,
        description="Past this many training rows the refuters that re-estimate work on a random sample of this size "
        "(their bands widened to the sample's standard error); the randomized slice weighs the full headline.",
    )
    seed: int = Field(default=0, description="Seed of the placebos, random causes and splits.")
    reference_plugin: str = Field(
        default="backdoor",
        description="When the effects plugin reports a single adjusted estimate, this effects plugin's estimates "
        "are what the headline is weighed against, to tell a misspecified estimator from unobserved confounding "
        "('' for none).",
    )


def reference_estimates(table: pl.DataFrame, inputs: EffectInputs, name: str, context: Any) -> pl.DataFrame | None:
    """Other estimators' ATE rows (named ``<estimator> (reference)``) when ``table`` has only
    one adjusted estimate; the reference plugin is reached through its entry point."""
    if not name or adjusted_rows(table) > 1 or not table.filter(pl.col("estimand") == "ATE").height:
        return None
    registry = get_registry()
    if name not in registry.available("effects"):
        context.log.warning("reference effects plugin %r is not installed: refutation weighs the headline alone", name)
        return None
    reference = registry.get("effects", name)().estimate(inputs, context)
    return reference.filter(pl.col("estimand") == "ATE").with_columns(pl.col("estimator") + " (reference)")


class EffectsConfig(EffectsStageConfig):  # type: ignore[valid-type, misc]
    """The effects plugin and its parameters, and how its headline is refuted."""

    refutation: RefutationConfig = Field(default_factory=RefutationConfig, description=RefutationConfig.__doc__)


REFUTATION_SPECS = [
    dg.AssetCheckSpec(
        name,
        asset="treatment_effects",
        blocking=BLOCKING,
        description=description
        + (" Blocks downstream assets when it fails." if BLOCKING else " Warns (CAUSALREC_REFUTATION=block blocks)."),
    )
    for name, description in zip(
        REFUTERS,
        [
            "Placebo exposures (permuted; drawn from the assignment model) have no effect.",
            "Adding an independent random common cause leaves the estimate stable.",
            "Random halves of the log agree with the estimate within its interval.",
            "The headline agrees with the randomized test slice (where there is one).",
        ],
        strict=True,
    )
]


def known_true_ate(context: dg.AssetExecutionContext) -> float | None:
    """The true ATE where the dataset knows it (a simulated world): ``true_ate`` on the
    ``ground_truth`` materialization that the ingest run of the current ``users`` made, read from
    the instance's event log; None for data without a truth."""
    prefix = context.asset_key_for_input("causal_variables").path[:-1]
    latest = context.instance.get_latest_materialization_event
    truth, users = latest(dg.AssetKey([*prefix, "ground_truth"])), latest(dg.AssetKey([*prefix, "users"]))
    if truth is None or users is None or truth.run_id != users.run_id or truth.asset_materialization is None:
        return None
    value = truth.asset_materialization.metadata.get("true_ate")
    return float(value.value) if value is not None and isinstance(value.value, int | float) else None


def headline_sensitivity(head: dict[str, Any], inputs: EffectInputs) -> Sensitivity:
    """The headline's E-values, benchmarked by the randomized slice where there is one."""
    features = inputs.features
    assert features is not None, "the sensitivity needs the training pairs' features"
    _, t, y = features.arrays([])
    unexposed = y[t == 0]
    baseline = float(unexposed.mean()) if unexposed.size else float("nan")
    sd = None if features.binary_outcome else float(y.std())
    slice_effect = slice_se = None
    if inputs.test is not None:
        slice_effect, slice_se, _, _ = inputs.test.difference_in_means()
    return sensitivity(head["estimate"], head["ci_low"], head["ci_high"], baseline, sd, slice_effect, slice_se)


@dg.asset(group_name="effects", owners=OWNERS, kinds={"econml", "pgmpy"}, check_specs=REFUTATION_SPECS)
def treatment_effects(
    context: dg.AssetExecutionContext,
    config: EffectsConfig,
    compute: ComputeResource,
    causal_variables: pl.DataFrame,
    causal_graph: dict,
    bayesian_network: pl.DataFrame,
    pair_features: pl.LazyFrame,
):
    """The effect of exposure on outcome (the first ATE row is the headline), and the
    refutation of that headline by its own estimator."""
    plugin = plugin_from_config(EffectsPlugin, config, context.log)
    inputs = effect_inputs(causal_variables, causal_graph, bayesian_network, pair_features)
    pctx = plugin_context(context)
    start = time.perf_counter()
    table = plugin.estimate(inputs, pctx)
    estimate_seconds = time.perf_counter() - start
    diagnostics = md.rounded(dict(plugin.diagnostics()))
    cfg = config.refutation
    start = time.perf_counter()
    outcomes = run_refutations(
        table,
        inputs,
        lambda changed, name: plugin.reestimate(changed, name, pctx),
        n_simulations=cfg.n_simulations,
        n_splits=cfg.n_splits,
        abs_tolerance=cfg.abs_tolerance,
        seed=cfg.seed,
        log=context.log,
        reference=reference_estimates(table, inputs, cfg.reference_plugin, pctx),
        max_rows=cfg.max_rows,
    )
    refuted = [o for o in outcomes if not o.passed]
    ates = table.filter(pl.col("estimand") == "ATE")
    meta: dict[str, Any] = {}
    if not ates.is_empty():
        head = ates.row(0, named=True)
        meta |= md.effect_metadata(head["estimate"], head["ci_low"], head["ci_high"], known_true_ate(context))
        meta["headline_estimator"] = head["estimator"]
        if inputs.features is not None:
            meta |= headline_sensitivity(head, inputs).metadata()
    meta |= md.plugin_metadata("effects", config.plugin)  # type: ignore[attr-defined]
    meta |= {
        **diagnostics,
        REFUTED: "; ".join(f"{o.name} ({o.cause or 'failed'})" for o in refuted) or "no",
        "estimate_seconds": md.rounded(estimate_seconds),
        "refutation_seconds": md.rounded(time.perf_counter() - start),
        "estimates": md.table(ates),
        **md.table_metadata(table, preview=0),
    }
    yield dg.Output(table, metadata=meta)
    severity = dg.AssetCheckSeverity.ERROR if BLOCKING else dg.AssetCheckSeverity.WARN
    for outcome in outcomes:
        if not outcome.passed:
            context.log.warning(f"refutation {outcome.name} failed: {outcome.message}")
        yield dg.AssetCheckResult(
            check_name=outcome.name,
            passed=outcome.passed,
            severity=severity,
            description=outcome.message,
            metadata=md.rounded(outcome.metadata()),
        )
