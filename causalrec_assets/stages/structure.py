"""The structure stage: the causal variables, the learned graph and the fitted Bayesian network."""

import time

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.bayesnet import adjustment_set, cpds_to_frame, fit_network
from causalrec_assets.contracts import train_rows
from causalrec_assets.metadata import OWNERS
from causalrec_assets.plugin_api import Knowledge
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.topics import item_topics as cluster_topics
from causalrec_assets.variables import OUTCOME, TREATMENT, VariableEncoder
from causalrec_resources.variables import CausalVariablesResource

StructureStageConfig = stage_config_class("structure")


@dg.asset(group_name="structure", owners=OWNERS, compute_kind="scikit-learn")
def item_topics(variable_settings: CausalVariablesResource, item_embeddings: pl.DataFrame) -> dg.Output:
    """Clusters of the item embeddings: the ``item_topic`` variable."""
    topics = cluster_topics(item_embeddings, k=variable_settings.n_topics or None, seed=variable_settings.seed)
    sizes = topics.group_by("item_topic").len().sort("item_topic")
    return dg.Output(
        topics,
        metadata={
            "dagster/row_count": topics.height,
            "topics": sizes.height,
            "sizes": md.markdown(sizes),
        },
    )


@dg.asset(group_name="structure", owners=OWNERS)
def causal_variables(
    variable_settings: CausalVariablesResource,
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_topics: pl.DataFrame,
) -> dg.Output:
    """One discrete row per training pair: attributes, derived variables, exposure, outcome."""
    train = train_rows(interactions)
    encoder = VariableEncoder(n_bins=variable_settings.n_bins, max_levels=variable_settings.max_levels).fit(
        users, items, train, item_topics
    )
    table = encoder.transform(train)
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "variables": ", ".join(table.columns),
            "left_out": md.markdown_dict(encoder.skipped) if encoder.skipped else "none",
            "outcome_threshold": encoder.outcome_threshold,
        },
    )


@dg.multi_asset(
    outs={
        "causal_graph": dg.AssetOut(
            description="The learned DAG (JSON: nodes, edges).", group_name="structure", owners=OWNERS
        ),
        "bayesian_network": dg.AssetOut(
            description="The fitted network's CPDs (variable, state, parents, probability).",
            group_name="structure",
            owners=OWNERS,
        ),
    },
    compute_kind="pgmpy",
)
def structure(context: dg.AssetExecutionContext, config: StructureStageConfig, causal_variables: pl.DataFrame):  # type: ignore[valid-type]
    """Structure learning under tiers: attributes → exposure → outcome, nothing into attributes."""
    plugin = plugin_from_config("structure", config, context.log)
    attrs = [c for c in causal_variables.columns if c not in (TREATMENT, OUTCOME)]
    knowledge = Knowledge(tiers=[attrs, [TREATMENT], [OUTCOME]], exogenous=attrs)
    start = time.perf_counter()
    edges = plugin.learn(causal_variables, knowledge, plugin_context(context))  # type: ignore[attr-defined]
    learn_seconds = time.perf_counter() - start
    network = fit_network(causal_variables, edges)
    adjust = adjustment_set(edges)
    graph = {"nodes": list(causal_variables.columns), "edges": [list(e) for e in edges], "adjustment_set": adjust}
    yield dg.Output(
        graph,
        "causal_graph",
        metadata={
            "edges": len(edges),
            "exposure_to_outcome": (TREATMENT, OUTCOME) in {tuple(e) for e in edges},
            "adjustment_set": ", ".join(adjust) or "empty",
            "learn_seconds": round(learn_seconds, 3),
            "graph": md.graph_picture(graph),
            "edge_list": md.markdown(pl.DataFrame({"cause": [a for a, _ in edges], "effect": [b for _, b in edges]})),
        },
    )
    cpds = cpds_to_frame(network)
    yield dg.Output(
        cpds, "bayesian_network", metadata={"dagster/row_count": cpds.height, "variables": len(graph["nodes"])}
    )
