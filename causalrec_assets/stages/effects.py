"""The effects stage: the effect of exposure on outcome, identified from the learned graph."""

import time
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from causalrec_assets import metadata as md
from causalrec_assets.bayesnet import frame_to_network
from causalrec_assets.contracts import test_rows, train_rows
from causalrec_assets.metadata import OWNERS
from causalrec_assets.plugin_api import EffectInputs
from causalrec_assets.refutation import run_refutations
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.variables import VariableEncoder
from causalrec_resources.variables import CausalVariablesResource

EffectsStageConfig = stage_config_class("effects")


@dg.asset(group_name="effects", owners=OWNERS, compute_kind="pgmpy")
def treatment_effects(
    context: dg.AssetExecutionContext,
    config: EffectsStageConfig,  # type: ignore[valid-type]
    causal_variables: pl.DataFrame,
    causal_graph: dict,
    bayesian_network: pl.DataFrame,
) -> dg.Output:
    """The effect of exposure on outcome; the first ATE row is the headline estimate."""
    plugin = plugin_from_config("effects", config, context.log)
    edges = [tuple(e) for e in causal_graph["edges"]]
    network = frame_to_network(bayesian_network, edges)
    inputs = EffectInputs(variables=causal_variables, edges=edges, network=network)
    start = time.perf_counter()
    table = plugin.estimate(inputs, plugin_context(context))  # type: ignore[attr-defined]
    head = table.filter(pl.col("estimand") == "ATE").row(0, named=True)
    return dg.Output(
        table,
        metadata={
            "headline_ate": head["estimate"],
            "headline_estimator": head["estimator"],
            "ci": f"[{head['ci_low']:.4f}, {head['ci_high']:.4f}]",
            "seconds": round(time.perf_counter() - start, 2),
            "estimates": md.markdown(table.filter(pl.col("estimand") == "ATE")),
        },
    )


# ------------------------------------------------------------------ refutation checks


class RefutationConfig(dg.Config):
    """How the refutation checks judge and what a failure does."""

    severity: Literal["WARN", "ERROR"] = Field(
        default="WARN",
        description="WARN: a failed refutation is shown on the asset; ERROR: it also blocks everything downstream "
        "(the checks are blocking), so recommendations are not refreshed on a refuted effect.",
    )
    n_simulations: int = Field(default=2, description="Placebo draws and random common causes per refuter.")
    n_splits: int = Field(default=5, description="Random splits into halves (each half is re-estimated).")
    abs_tolerance: float = Field(default=0.005, description="Smallest tolerance, whatever the interval's width.")
    propensity_clip: float = Field(default=0.02, description="Propensities are clipped to [c, 1 - c].")
    seed: int = Field(default=0, description="Seed of the placebos, random causes and splits.")


REFUTATION_SPECS = [
    dg.AssetCheckSpec(
        name,
        asset="treatment_effects",
        blocking=True,
        description=description,
        additional_deps=[
            "causal_variables",
            "causal_graph",
            "interactions",
            "users",
            "items",
            "item_topics",
            "item_embeddings",
        ],
    )
    for name, description in [
        ("placebo_treatment", "Placebo exposures (permuted; drawn from the assignment model) have no effect."),
        ("random_common_cause", "Adding an independent random common cause leaves the estimate stable."),
        ("random_halves", "Random halves of the log agree with the estimate within its interval."),
        ("randomized_slice", "The observational effect agrees with the randomized test slice's (where there is one)."),
    ]
]


@dg.multi_asset_check(
    specs=REFUTATION_SPECS,
    ins={
        "treatment_effects": dg.AssetIn("treatment_effects"),
        "causal_variables": dg.AssetIn("causal_variables"),
        "causal_graph": dg.AssetIn("causal_graph"),
        "interactions": dg.AssetIn("interactions"),
        "users": dg.AssetIn("users"),
        "items": dg.AssetIn("items"),
        "item_topics": dg.AssetIn("item_topics"),
        "item_embeddings": dg.AssetIn("item_embeddings"),
    },
    compute_kind="refutation",
)
def refutation_checks(
    context: dg.AssetCheckExecutionContext,
    config: RefutationConfig,
    variable_settings: CausalVariablesResource,
    treatment_effects: pl.DataFrame,
    causal_variables: pl.DataFrame,
    causal_graph: dict,
    interactions: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
    item_topics: pl.DataFrame,
    item_embeddings: pl.DataFrame,
):
    """Refute the headline effect (see ``causalrec_assets.refutation``). The test slice is
    encoded exactly as the training log was (same bins, topics and affinity), so the
    randomized-slice comparison adjusts for the same variables."""
    edges = [tuple(e) for e in causal_graph["edges"]]
    encoder = VariableEncoder(n_bins=variable_settings.n_bins, max_levels=variable_settings.max_levels).fit(
        users, items, train_rows(interactions), item_topics, item_embeddings=item_embeddings
    )
    test = test_rows(interactions)
    outcomes = run_refutations(
        treatment_effects,
        causal_variables,
        edges,
        encoder.transform(test) if test.height else None,
        n_simulations=config.n_simulations,
        n_splits=config.n_splits,
        abs_tolerance=config.abs_tolerance,
        clip=config.propensity_clip,
        seed=config.seed,
        log=context.log,
    )
    severity = dg.AssetCheckSeverity.ERROR if config.severity == "ERROR" else dg.AssetCheckSeverity.WARN
    for outcome in outcomes:
        if not outcome.passed:
            context.log.warning(f"refutation {outcome.name} failed: {outcome.message}")
        yield dg.AssetCheckResult(
            check_name=outcome.name,
            asset_key="treatment_effects",
            passed=outcome.passed,
            severity=severity,
            description=outcome.message,
            metadata={**outcome.metadata(), "applicable": outcome.applicable},
        )


REFUTATION_CHECKS = [refutation_checks]
