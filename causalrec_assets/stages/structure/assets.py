"""The structure stage: the causal variables, the learned graph and the fitted Bayesian network."""

import time
from dataclasses import dataclass

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.metadata import OWNERS
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.structure.knowledge import stage_knowledge
from causalrec_assets.stages.structure.protocol import Edge, Knowledge, StructurePlugin
from causalrec_assets.stages.structure.stability import Stability, StabilityConfig, edge_stability, stability_config
from causalrec_resources.compute import ComputeResource
from causalrec_resources.variables import CausalVariablesResource
from causalrec_toolkit.bayesnet import adjustment_set, cpds_to_frame, fit_network
from causalrec_toolkit.counts import count_table, g_test, sharded_count_table
from causalrec_toolkit.encoding import encode_log
from causalrec_toolkit.graph_picture import causal_paths, render_png
from causalrec_toolkit.topics import item_topics as cluster_topics
from causalrec_toolkit.variables import AFFINITY, OUTCOME, TREATMENT

StructureStageConfig = stage_config_class("structure")


@dg.asset(group_name="structure", owners=OWNERS, kinds={"scikit-learn"})
def item_topics(variable_settings: CausalVariablesResource, item_embeddings: pl.DataFrame) -> dg.Output:
    """Clusters of the item embeddings: the ``item_topic`` variable, and finer ``item_cell``s."""
    topics = cluster_topics(item_embeddings, k=variable_settings.n_topics or None, seed=variable_settings.seed)
    sizes = topics.group_by("item_topic").len().sort("item_topic")
    return dg.Output(
        topics,
        metadata={
            **md.table_metadata(topics, preview=0),
            "topics": sizes.height,
            "cells": topics["item_cell"].n_unique(),  # within_user's finer kinds of item
            "sizes": md.table(sizes),
        },
    )


def _out(description: str, kinds: set[str] | None = None) -> dg.AssetOut:
    return dg.AssetOut(description=description, group_name="structure", owners=OWNERS, kinds=kinds)


@dg.multi_asset(
    outs={
        "causal_variables": _out("One discrete row per training pair, for structure learning and the network."),
        "pair_features": _out("Every logged pair (training and test) as row-level features, for the estimators."),
        "variable_encoding": _out(
            "The fitted encodings (discrete variables and row-level features of any pair) with the users, items and "
            "item embeddings they encode, made once here and read by ranking; a pickle (the one asset that is not a "
            "table or a document)."
        ),
    },
    name="variables",
)
def variables(
    variable_settings: CausalVariablesResource,
    compute: ComputeResource,
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_topics: pl.DataFrame,
    item_embeddings: pl.DataFrame,
):
    """The causal model's variables, twice: ``causal_variables``, one discrete row per training
    pair (attributes with numbers binned, derived variables: topic, popularity, cross-fitted
    affinity; exposure, binarised outcome); and ``pair_features``, every logged pair with the
    data as it is (numbers as numbers, categorical codes, the item text's components, the
    user's cross-fitted taste and history; see ``causalrec_toolkit.features``), with exposure and
    the outcome as logged. Both encodings are fitted once, here, and kept as
    ``variable_encoding``."""
    encoded = encode_log(
        users,
        items,
        interactions,
        item_topics,
        item_embeddings,
        compute,
        n_bins=variable_settings.n_bins,
        max_levels=variable_settings.max_levels,
        text_components=variable_settings.text_components,
    )
    encoding, table, features = encoded.encoding, encoded.variables, encoded.features
    encoder, featurizer = encoding.encoder, encoding.featurizer
    meta = {
        **md.table_metadata(table, preview=0),
        "variables": ", ".join(table.columns),
        "left_out": md.markdown_dict(encoder.skipped) if encoder.skipped else "none",
        "outcome_threshold": md.rounded(encoder.outcome_threshold),
    }
    if AFFINITY in table.columns:
        meta["affinity_levels"] = md.table(table.group_by(AFFINITY).len().sort(AFFINITY))
    yield dg.Output(table, "causal_variables", metadata=meta)
    yield dg.Output(
        features,
        "pair_features",
        metadata={
            **md.table_metadata(features, preview=0),
            "features": len(featurizer.feature_names),
            "categorical": ", ".join(c for c in featurizer.feature_names if features.schema[c].is_integer()) or "none",
            "left_out": md.markdown_dict(featurizer.skipped_) if featurizer.skipped_ else "none",
        },
    )
    yield dg.Output(
        encoding,
        "variable_encoding",
        metadata={"variables": len(encoder.variable_names), "features": len(featurizer.feature_names)},
    )


def effect_evidence(counts: pl.DataFrame, adjust: list[str]) -> str:
    """What the data alone say about the required ``exposure → outcome`` edge: the G-test of
    exposure ⊥ outcome given the adjustment set, on the count table, so a reader sees whether
    the edge was only asserted (large p) or is plainly in the data (small p)."""
    if not all(v in counts.columns and counts[v].n_unique() > 1 for v in (TREATMENT, OUTCOME)):
        return "not tested: exposure or outcome has a single value"
    stat, dof, p_value = g_test(counts, TREATMENT, OUTCOME, list(adjust))
    return f"G = {stat:.1f}, dof = {dof}, p = {p_value:.3g} (exposure ⊥ outcome | adjustment set)"


@dg.multi_asset(
    outs={
        "causal_graph": _out(
            "The learned DAG (JSON: nodes, edges, per-edge bootstrap stability, adjustment set). Its picture is "
            "the `graph` row of the metadata below (**[Show Markdown]**): exposure and outcome purple, the "
            "adjustment set orange, edges pale to dark blue with their stability, dashed when unstable.",
            {"pgmpy"},
        ),
        "bayesian_network": _out("The fitted network's CPDs (variable, state, parents, probability).", {"pgmpy"}),
    },
)
def structure(
    context: dg.AssetExecutionContext,
    config: StructureStageConfig,  # type: ignore[valid-type]
    compute: ComputeResource,
    causal_variables: pl.DataFrame,
):
    """Structure learning under tiers (attributes → exposure → outcome, nothing into
    attributes) plus the plugin's own knowledge, with bootstrap edge stability; learners
    and the network read the count table, summed from each shard's counts."""
    plugin = plugin_from_config(StructurePlugin, config, context.log)
    counts = sharded_count_table(causal_variables, compute)
    context.log.info("count table: %d distinct rows of %d", counts.height, causal_variables.height)
    learned = learn_graph(plugin, causal_variables, plugin_context(context), counts)
    network = fit_network(counts, learned.edges)
    graph = learned.document()
    made_by = md.plugin_metadata("structure", config.plugin)  # type: ignore[attr-defined]
    meta = {**graph_metadata(learned, counts, graph), **made_by}
    meta["count_table"] = f"{counts.height} distinct rows of {causal_variables.height}" + (
        "" if plugin.accepts_counts else " (the plugin reads rows; the network and the G-test read the counts)"
    )
    yield dg.Output(graph, "causal_graph", metadata=meta)
    cpds = cpds_to_frame(network)
    yield dg.Output(
        cpds, "bayesian_network", metadata={**made_by, **md.table_metadata(cpds), "variables": len(graph["nodes"])}
    )


@dataclass
class LearnedGraph:
    """A learned DAG with what the stage knows about it: the knowledge it obeyed, each edge's
    bootstrap stability, and how long learning and the bootstrap took."""

    names: list[str]
    edges: list[Edge]
    knowledge: Knowledge
    stability: Stability
    settings: StabilityConfig
    seed: int
    learn_seconds: float
    bootstrap_seconds: float
    report: dict

    @property
    def shares(self) -> list[float]:
        return [round(self.stability.of(e), 4) for e in self.edges] if self.stability.resamples else []

    @property
    def unstable(self) -> list[Edge]:
        return [e for e, s in zip(self.edges, self.shares, strict=False) if s < self.settings.unstable_below]

    def document(self) -> dict:
        """The ``causal_graph`` JSON (README, "The two commands"): nodes, edges, stability, adjustment set."""
        return {
            "nodes": self.names,
            "edges": [list(e) for e in self.edges],
            "stability": self.shares,
            "unstable_edges": [list(e) for e in self.unstable],
            "adjustment_set": adjustment_set(self.edges),
            "bootstrap": {
                "resamples": self.stability.resamples,
                "failed": self.stability.failed,
                "seed": self.seed,
                "resampling": self.settings.resampling,
            },
        }


def learn_graph(
    plugin: StructurePlugin, variables: pl.DataFrame, context: PluginContext, counts: pl.DataFrame | None = None
) -> LearnedGraph:
    """The plugin's DAG under the stage's knowledge (checked before any work), then the
    bootstrap: the plugin re-learns on resampled logs. A plugin that ``accepts_counts`` reads
    the count table (``counts``, made here when not given) instead of the rows."""
    names = list(variables.columns)
    knowledge = stage_knowledge(variables)
    merged = plugin.check_knowledge(names, knowledge)  # a bad configuration fails first
    data = variables
    if plugin.accepts_counts:
        data = count_table(variables) if counts is None else counts
    start = time.perf_counter()
    edges = [(str(a), str(b)) for a, b in plugin.learn(data, knowledge, context)]
    learn_seconds = time.perf_counter() - start
    settings = stability_config(plugin.config)
    start = time.perf_counter()
    stability = edge_stability(
        plugin,
        data,
        knowledge,
        context,
        settings.bootstrap,
        seed=context.seed,
        n_jobs=settings.n_jobs,
        scheme=settings.resampling,
        fraction=settings.subsample_fraction,
    )
    return LearnedGraph(
        names=names,
        edges=edges,
        knowledge=merged,
        stability=stability,
        settings=settings,
        seed=context.seed,
        learn_seconds=learn_seconds,
        bootstrap_seconds=time.perf_counter() - start,
        report=dict(plugin.report()),
    )


def graph_metadata(learned: LearnedGraph, counts: pl.DataFrame, graph: dict) -> dict:
    """What a person reads first on ``causal_graph``: the paths, the adjustment set, what was
    unstable or frequent but absent, the knowledge obeyed, and the picture."""
    edges, unstable, adjust = learned.edges, learned.unstable, graph["adjustment_set"]
    edge_table = pl.DataFrame(
        {
            "cause": [a for a, _ in edges],
            "effect": [b for _, b in edges],
            "stability": learned.shares or [None] * len(edges),
            "unstable": [e in unstable for e in edges],
        },
        schema={"cause": pl.String, "effect": pl.String, "stability": pl.Float64, "unstable": pl.Boolean},
    )
    absent = sorted((e, s) for e, s in learned.stability.fractions.items() if s >= 0.5 and e not in set(edges))
    knowledge = learned.knowledge
    return {
        "graph": md.picture(render_png(graph), "causal graph"),
        "edges": len(edges),
        "exposure_to_outcome": (TREATMENT, OUTCOME) in set(edges),
        "causal_paths": ", ".join(f"{a} → {b}" for a, b in sorted(causal_paths(edges, TREATMENT, OUTCOME))) or "none",
        "adjustment_set": ", ".join(adjust) or "empty",
        "exposure_to_outcome_test": effect_evidence(counts, adjust),
        "learn_seconds": md.rounded(learned.learn_seconds),
        "bootstrap_resamples": learned.stability.resamples,
        "resampling": learned.settings.resampling,
        "bootstrap_failed": learned.stability.failed,
        "bootstrap_seconds": md.rounded(learned.bootstrap_seconds),
        "unstable_edges": ", ".join(f"{a} → {b}" for a, b in unstable) or "none",
        "frequent_but_absent": ", ".join(f"{a} → {b} ({s:.2f})" for (a, b), s in absent) or "none",
        "variables_report": md.markdown_dict(learned.report) if learned.report else "nothing to report",
        "knowledge": md.markdown_dict(
            {
                "tiers": " → ".join("{" + ", ".join(t) + "}" for t in knowledge.tiers if t),
                "required": ", ".join(f"{a} → {b}" for a, b in knowledge.required) or "none",
                "forbidden pairs": len(knowledge.forbidden),
            }
        ),
        "edge_list": md.table(edge_table, rows=60),
    }
