"""The effects stage: the effect of exposure on outcome, identified from the learned graph."""

import time

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.bayesnet import frame_to_network
from causalrec_assets.metadata import OWNERS
from causalrec_assets.plugin_api import EffectInputs
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class

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
