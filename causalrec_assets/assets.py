"""The six stages as Dagster assets. Assets stay thin: they pick the plugin from run config,
call it, and attach metadata; the logic lives in plain functions and plugins."""

import time

import dagster as dg
import polars as pl

from causalrec_assets import embeddings as emb
from causalrec_assets import metadata as md
from causalrec_assets.bayesnet import adjustment_set, cpds_to_frame, fit_network, frame_to_network
from causalrec_assets.contracts import harmonise_id_types, train_rows, with_default_split
from causalrec_assets.evaluation import evaluate
from causalrec_assets.plugin_api import EffectInputs, Knowledge, RankingInputs
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.topics import item_topics as cluster_topics
from causalrec_assets.variables import OUTCOME, TREATMENT, VariableEncoder

IngestStageConfig = stage_config_class("ingest")
EmbedStageConfig = stage_config_class("embed")
StructureStageConfig = stage_config_class("structure")
EffectsStageConfig = stage_config_class("effects")
RankingStageConfig = stage_config_class("ranking")

OWNERS = ["team:causalrec"]


# ------------------------------------------------------------------------------ ingest
@dg.multi_asset(
    outs={
        "users": dg.AssetOut(description="One row per user: user_id and attributes.", group_name="ingest"),
        "items": dg.AssetOut(description="One row per item: item_id, text, attributes.", group_name="ingest"),
        "interactions": dg.AssetOut(
            description="The log: user_id, item_id, exposure, outcome, timestamp, split.", group_name="ingest"
        ),
        "ground_truth": dg.AssetOut(
            description="Simulated worlds only: the true DAG, confounders and ATE.",
            group_name="ingest",
            is_required=False,
        ),
        "true_uplift": dg.AssetOut(
            description="Simulated worlds only: the true uplift of every (user, item) pair.",
            group_name="ingest",
            is_required=False,
        ),
    },
    can_subset=False,
    name="ingest",
    compute_kind="polars",
)
def ingest(context: dg.AssetExecutionContext, config: IngestStageConfig):  # type: ignore[valid-type]
    """Read the dataset chosen by CAUSALREC_DATA (or the run config) into the canonical tables."""
    plugin = plugin_from_config("ingest", config, context.log)
    start = time.perf_counter()
    data = plugin.load(plugin_context(context))
    users, items, interactions = harmonise_id_types(data.users, data.items, data.interactions)
    seconds = round(time.perf_counter() - start, 3)
    source = {"plugin": type(plugin).__name__, "dataset": data.name, "seconds": seconds}
    yield dg.Output(users, "users", metadata={**source, **md.table_metadata(users)})
    yield dg.Output(items, "items", metadata={**source, **md.table_metadata(items)})
    yield dg.Output(interactions, "interactions", metadata={**source, **md.interaction_metadata(interactions)})
    if data.truth is not None:
        yield dg.Output(data.truth.as_json(), "ground_truth", metadata={"true_ate": data.truth.ate})
        yield dg.Output(data.truth.uplift, "true_uplift", metadata=md.table_metadata(data.truth.uplift, preview=False))


# ------------------------------------------------------------------------------ embed
@dg.asset(group_name="embed", owners=OWNERS, compute_kind="onnxruntime")
def item_embeddings(context: dg.AssetExecutionContext, config: EmbedStageConfig, items: pl.DataFrame):  # type: ignore[valid-type]
    """Item text embedded by the embed plugin (items without text: their attributes, see
    ``embeddings.item_texts``)."""
    plugin = plugin_from_config("embed", config, context.log)
    start = time.perf_counter()
    texts = emb.item_texts(items)
    vectors = plugin.embed(texts, plugin_context(context))  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    frame = emb.embedding_frame(items["item_id"], texts, vectors, plugin.model_key())  # type: ignore[attr-defined]
    runtime = {k: str(v) for k, v in plugin.describe_runtime().items()}  # type: ignore[attr-defined]
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": frame.height,
            "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
            "seconds": round(seconds, 3),
            "texts_per_second": round(len(texts) / max(seconds, 1e-9), 1),
            "items_without_text": emb.count_missing_text(items),
            **runtime,
        },
    )


@dg.asset(group_name="embed", owners=OWNERS)
def user_embeddings(interactions: pl.DataFrame, item_embeddings: pl.DataFrame) -> dg.Output:
    """Each user's mean item embedding over what they engaged with in the training log."""
    frame, engaged_users = emb.user_profiles(train_rows(interactions), item_embeddings)
    return dg.Output(frame, metadata={"dagster/row_count": frame.height, "users_with_engagement": engaged_users})


# ------------------------------------------------------------------------------ structure
class VariablesConfig(dg.Config):
    n_bins: int = 4
    max_levels: int = 12
    n_topics: int = 0  # 0: chosen by the silhouette criterion
    seed: int = 0


@dg.asset(group_name="structure", owners=OWNERS, compute_kind="scikit-learn")
def item_topics(config: VariablesConfig, item_embeddings: pl.DataFrame) -> dg.Output:
    """Clusters of the item embeddings: the ``item_topic`` variable."""
    topics = cluster_topics(item_embeddings, k=config.n_topics or None, seed=config.seed)
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
    config: VariablesConfig,
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_topics: pl.DataFrame,
) -> dg.Output:
    """One discrete row per training pair: attributes, derived variables, exposure, outcome."""
    train = train_rows(interactions)
    encoder = VariableEncoder(n_bins=config.n_bins, max_levels=config.max_levels).fit(users, items, train, item_topics)
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
        "causal_graph": dg.AssetOut(description="The learned DAG (JSON: nodes, edges).", group_name="structure"),
        "bayesian_network": dg.AssetOut(
            description="The fitted network's CPDs (variable, state, parents, probability).", group_name="structure"
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


# ------------------------------------------------------------------------------ effects
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


# ------------------------------------------------------------------------------ ranking
@dg.multi_asset(
    outs={
        "recommendations": dg.AssetOut(
            description="Top-K items per user: user_id, item_id, rank, score.", group_name="ranking"
        ),
        "test_scores": dg.AssetOut(description="A score for every split = test pair.", group_name="ranking"),
    },
    compute_kind="pgmpy",
)
def ranking(
    context: dg.AssetExecutionContext,
    config: RankingStageConfig,  # type: ignore[valid-type]
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    item_topics: pl.DataFrame,
    causal_variables: pl.DataFrame,
    causal_graph: dict,
    bayesian_network: pl.DataFrame,
    treatment_effects: pl.DataFrame,
):
    """Rank every user's unseen items by the ranking plugin's causal score."""
    plugin = plugin_from_config("ranking", config, context.log)
    edges = [tuple(e) for e in causal_graph["edges"]]
    variables_config = VariablesConfig()
    encoder = VariableEncoder(n_bins=variables_config.n_bins, max_levels=variables_config.max_levels).fit(
        users, items, train_rows(interactions), item_topics
    )
    inputs = RankingInputs(
        users=users,
        items=items,
        interactions=with_default_split(interactions),
        item_embeddings=item_embeddings,
        user_embeddings=user_embeddings,
        variables=causal_variables,
        variable_encoder=encoder,
        edges=edges,
        network=frame_to_network(bayesian_network, edges),
        treatment_effects=treatment_effects,
    )
    start = time.perf_counter()
    out = plugin.rank(inputs, plugin_context(context))  # type: ignore[attr-defined]
    seconds = round(time.perf_counter() - start, 2)
    yield dg.Output(
        out.recommendations,
        "recommendations",
        metadata={
            "dagster/row_count": out.recommendations.height,
            "users": out.recommendations["user_id"].n_unique(),
            "seconds": seconds,
            "preview": md.markdown(out.recommendations.head(15)),
        },
    )
    yield dg.Output(out.test_scores, "test_scores", metadata={"dagster/row_count": out.test_scores.height})


# ------------------------------------------------------------------------------ evaluation
@dg.asset(group_name="ranking", owners=OWNERS)
def evaluation(interactions: pl.DataFrame, test_scores: pl.DataFrame) -> dg.Output:
    """Ranking quality on the randomized test slice (when the data has one)."""
    table = evaluate(with_default_split(interactions), test_scores)
    meta = {f"{r['metric']}": float(r["value"]) for r in table.iter_rows(named=True) if r["value"] is not None}
    return dg.Output(table, metadata={**meta, "table": md.markdown(table)})
