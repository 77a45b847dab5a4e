"""The structure stage: the causal variables, the learned graph and the fitted Bayesian network."""

import time

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.bayesnet import adjustment_set, cpds_to_frame, fit_network
from causalrec_assets.contracts import train_rows, with_default_split
from causalrec_assets.features import PairFeaturizer
from causalrec_assets.graph_picture import causal_paths, graph_picture
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_assets.stages.structure.stability import edge_stability
from causalrec_assets.topics import item_topics as cluster_topics
from causalrec_assets.variables import AFFINITY, OUTCOME, TREATMENT, VariableEncoder
from causalrec_plugins.structure.citests import CodedCITest
from causalrec_plugins.structure.knowledge import combine
from causalrec_plugins.structure.table import coded_table
from causalrec_resources.variables import CausalVariablesResource

StructureStageConfig = stage_config_class("structure")

# Bootstrap settings for a structure plugin whose config does not carry them.
STABILITY_DEFAULTS = {
    "bootstrap": 20,
    "unstable_below": 0.6,
    "n_jobs": 2,
    "resampling": "subsample",
    "subsample_fraction": 0.5,
}


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


@dg.multi_asset(
    outs={
        "causal_variables": dg.AssetOut(
            description="One discrete row per training pair, for structure learning and the network.",
            group_name="structure",
            owners=OWNERS,
        ),
        "pair_features": dg.AssetOut(
            description="Every logged pair (training and test) as row-level features, for the estimators.",
            group_name="structure",
            owners=OWNERS,
        ),
    },
    name="variables",
)
def variables(
    variable_settings: CausalVariablesResource,
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
    user's cross-fitted taste and history; see ``causalrec_assets.features``), with exposure and
    the outcome as logged."""
    logged = with_default_split(interactions)
    train = train_rows(logged)
    encoder = VariableEncoder(n_bins=variable_settings.n_bins, max_levels=variable_settings.max_levels).fit(
        users, items, train, item_topics, item_embeddings=item_embeddings
    )
    table = encoder.transform(train)
    meta = {
        "dagster/row_count": table.height,
        "variables": ", ".join(table.columns),
        "left_out": md.markdown_dict(encoder.skipped) if encoder.skipped else "none",
        "outcome_threshold": encoder.outcome_threshold,
    }
    if AFFINITY in table.columns:
        meta["affinity_levels"] = md.markdown(table.group_by(AFFINITY).len().sort(AFFINITY))
    yield dg.Output(table, "causal_variables", metadata=meta)
    featurizer = PairFeaturizer(n_components=variable_settings.text_components).fit(
        users, items, train, item_embeddings, item_topics
    )
    features = pl.concat([logged.select("user_id", "item_id", "split"), featurizer.transform(logged)], how="horizontal")
    yield dg.Output(
        features,
        "pair_features",
        metadata={
            "dagster/row_count": features.height,
            "features": len(featurizer.feature_names),
            "categorical": ", ".join(c for c in featurizer.feature_names if features.schema[c].is_integer()) or "none",
            "left_out": md.markdown_dict(featurizer.skipped_) if featurizer.skipped_ else "none",
        },
    )


def stage_knowledge(variables: pl.DataFrame) -> Knowledge:
    """What the stage knows about every causal table: attributes and derived variables come
    before exposure, exposure before outcome, and nothing causes an attribute.

    ``exposure → outcome`` is required (when both vary): it is the effect the pipeline
    estimates, and leaving it out would set that effect to zero on a failure to reject
    independence. A small, heterogeneous effect (ATE 0.02 with effects of both signs) can
    pass a 72-degree-of-freedom stratified test at α = 0.01; the effect stage's estimators and
    intervals say how large it is, and ``causal_graph``'s ``exposure_to_outcome_test``
    metadata says whether the data alone ask for the edge."""
    columns = list(variables.columns)
    attrs = [c for c in columns if c not in (TREATMENT, OUTCOME)]
    tiers = [attrs] + [[v] for v in (TREATMENT, OUTCOME) if v in columns]
    varies = all(v in columns and variables[v].n_unique() > 1 for v in (TREATMENT, OUTCOME))
    return Knowledge(tiers=tiers, exogenous=attrs, required=[(TREATMENT, OUTCOME)] if varies else [])


def effect_evidence(variables: pl.DataFrame, adjust: list[str]) -> str:
    """What the data alone say about the required ``exposure → outcome`` edge: a G-test of
    exposure ⊥ outcome given the adjustment set, so a reader sees whether the edge was
    only asserted (large p) or is plainly in the data (small p)."""
    if not all(v in variables.columns and variables[v].n_unique() > 1 for v in (TREATMENT, OUTCOME)):
        return "not tested: exposure or outcome has a single value"
    test = CodedCITest(coded_table(variables.select(TREATMENT, OUTCOME, *adjust)))
    stat, p_value = test.run_test(TREATMENT, OUTCOME, list(adjust))
    return f"G = {stat:.1f}, dof = {test.dof_}, p = {p_value:.3g} (exposure ⊥ outcome | adjustment set)"


def stability_settings(plugin) -> dict:
    config = plugin.config
    return {k: getattr(config, k, v) for k, v in STABILITY_DEFAULTS.items()}


@dg.multi_asset(
    outs={
        "causal_graph": dg.AssetOut(
            description="The learned DAG (JSON: nodes, edges, per-edge bootstrap stability, adjustment set).",
            group_name="structure",
            owners=OWNERS,
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
    """Structure learning under tiers (attributes → exposure → outcome, nothing into
    attributes) plus the plugin's own knowledge, with bootstrap edge stability."""
    plugin = plugin_from_config("structure", config, context.log)
    names = list(causal_variables.columns)
    knowledge = stage_knowledge(causal_variables)
    check = getattr(plugin, "check_knowledge", None)
    merged = check(names, knowledge) if callable(check) else combine(knowledge, Knowledge(), names)  # fails first
    pctx = plugin_context(context)
    start = time.perf_counter()
    edges = [tuple(e) for e in plugin.learn(causal_variables, knowledge, pctx)]  # type: ignore[attr-defined]
    learn_seconds = time.perf_counter() - start
    settings = stability_settings(plugin)
    start = time.perf_counter()
    stability = edge_stability(
        plugin,
        causal_variables,
        knowledge,
        pctx,
        settings["bootstrap"],
        seed=pctx.seed,
        n_jobs=settings["n_jobs"],
        scheme=settings["resampling"],
        fraction=settings["subsample_fraction"],
    )
    bootstrap_seconds = time.perf_counter() - start
    shares = [round(stability.of(e), 4) for e in edges] if stability.resamples else []
    unstable = [list(e) for e, s in zip(edges, shares, strict=False) if s < settings["unstable_below"]]
    network = fit_network(causal_variables, edges)
    adjust = adjustment_set(edges)
    graph = {
        "nodes": names,
        "edges": [list(e) for e in edges],
        "stability": shares,
        "unstable_edges": unstable,
        "adjustment_set": adjust,
        "bootstrap": {
            "resamples": stability.resamples,
            "failed": stability.failed,
            "seed": pctx.seed,
            "resampling": settings["resampling"],
        },
    }
    edge_table = pl.DataFrame(
        {
            "cause": [a for a, _ in edges],
            "effect": [b for _, b in edges],
            "stability": shares or [None] * len(edges),
            "unstable": [list(e) in unstable for e in edges],
        },
        schema={"cause": pl.String, "effect": pl.String, "stability": pl.Float64, "unstable": pl.Boolean},
    )
    report = getattr(plugin, "report_", {}) or {}
    absent = sorted((e, s) for e, s in stability.fractions.items() if s >= 0.5 and e not in set(edges))
    yield dg.Output(
        graph,
        "causal_graph",
        metadata={
            "plugin": config.plugin,  # type: ignore[attr-defined]
            "edges": len(edges),
            "exposure_to_outcome": (TREATMENT, OUTCOME) in set(edges),
            "causal_paths": ", ".join(f"{a} → {b}" for a, b in sorted(causal_paths(edges, TREATMENT, OUTCOME)))
            or "none",
            "adjustment_set": ", ".join(adjust) or "empty",
            "exposure_to_outcome_test": effect_evidence(causal_variables, adjust),
            "learn_seconds": round(learn_seconds, 3),
            "bootstrap_resamples": stability.resamples,
            "resampling": settings["resampling"],
            "bootstrap_failed": stability.failed,
            "bootstrap_seconds": round(bootstrap_seconds, 3),
            "unstable_edges": ", ".join(f"{a} → {b}" for a, b in unstable) or "none",
            "frequent_but_absent": ", ".join(f"{a} → {b} ({s:.2f})" for (a, b), s in absent) or "none",
            "variables_report": md.markdown_dict(report) if report else "nothing to report",
            "knowledge": md.markdown_dict(
                {
                    "tiers": " → ".join("{" + ", ".join(t) + "}" for t in merged.tiers if t),
                    "config tiers": " → ".join("{" + ", ".join(t) + "}" for t in getattr(plugin.config, "tiers", []))
                    or "none",
                    "required": ", ".join(f"{a} → {b}" for a, b in merged.required) or "none",
                    "forbidden pairs": len(merged.forbidden),
                }
            ),
            "graph": graph_picture(graph),
            "edge_list": md.markdown(edge_table, rows=60),
        },
    )
    cpds = cpds_to_frame(network)
    yield dg.Output(
        cpds, "bayesian_network", metadata={"dagster/row_count": cpds.height, "variables": len(graph["nodes"])}
    )
