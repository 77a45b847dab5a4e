"""The ranking stage: recommendations and test-slice scores, and their evaluation."""

import time

import dagster as dg
import polars as pl
from pydantic import Field

from causalrec_assets import metadata as md
from causalrec_assets.contracts import with_default_split
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.effects.assets import REFUTED
from causalrec_assets.stages.ranking.batches import rank_with
from causalrec_assets.stages.ranking.explanations import explain_recommendations
from causalrec_assets.stages.ranking.inputs import ranking_inputs
from causalrec_assets.stages.ranking.protocol import RankingPlugin
from causalrec_resources.compute import ComputeResource
from causalrec_toolkit import modifier_plot, policy_value_plot, value_of_lists
from causalrec_toolkit.encoding import VariableEncoding
from causalrec_toolkit.evaluation import TARGET_NOTES, evaluate, evaluation_plot, evaluation_report, ranking_target
from causalrec_toolkit.variables import binarise_threshold

RankingStageConfig = stage_config_class("ranking")
RANKING_KINDS = {"econml", "pgmpy"}


@dg.multi_asset(
    outs={
        "recommendations": dg.AssetOut(
            description="Top-K items per user: user_id, item_id, rank, score.",
            group_name="ranking",
            owners=OWNERS,
            kinds=RANKING_KINDS,
        ),
        "test_scores": dg.AssetOut(
            description="A score for every split = test pair.", group_name="ranking", owners=OWNERS, kinds=RANKING_KINDS
        ),
        "explanations": dg.AssetOut(
            description="Why each recommendation: the effect modifiers behind its predicted uplift (user_id, item_id, "
            "rank, score, modifier, contribution, value), from the ranker's explain (plugin API 1.6).",
            group_name="ranking",
            owners=OWNERS,
            kinds=RANKING_KINDS,
        ),
    },
)
def ranking(
    context: dg.AssetExecutionContext,
    config: RankingStageConfig,  # type: ignore[valid-type]
    compute: ComputeResource,
    interactions: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    variable_encoding: VariableEncoding,
    causal_variables: pl.DataFrame,
    bayesian_network: pl.DataFrame,
    treatment_effects: pl.DataFrame,
):
    """Rank every user's unseen items by the ranking plugin's causal score: the plugin's ranker
    is fitted once, then asked for the lists of one batch of users at a time, user shard by user
    shard (on the ``compute`` resource's engine)."""
    plugin = plugin_from_config(RankingPlugin, config, context.log)
    inputs = ranking_inputs(
        interactions, user_embeddings, variable_encoding, causal_variables, bayesian_network, treatment_effects
    )
    start = time.perf_counter()
    timing: dict = {}
    pctx = plugin_context(context)
    ranker = None
    if plugin.fits():
        ranker = plugin.fit(inputs, pctx)
        timing["fit_seconds"] = md.rounded(time.perf_counter() - start)
        context.log.info(f"ranker fitted in {timing['fit_seconds']} s; recommending: {compute.describe()}")
        out = rank_with(ranker, inputs, pctx, compute)
        timing["recommend_seconds"] = md.rounded(time.perf_counter() - start - timing["fit_seconds"])
        timing["ranker"] = type(ranker).__name__
        timing["compute"] = compute.describe()
    else:  # a plugin written for plugin API 1.3 or before: the whole answer in one call
        out = plugin.rank(inputs, pctx)
    made_by = md.plugin_metadata("ranking", config.plugin)  # type: ignore[attr-defined]
    seconds = md.rounded(time.perf_counter() - start)
    refuted = refutation_verdict(context)
    if refuted == UNKNOWN:
        context.log.info("this instance has no record of treatment_effects' refutation checks")
    elif refuted != "no":
        context.log.warning(f"the headline effect these recommendations rest on was refuted: {refuted}")
    yield dg.Output(
        out.recommendations,
        "recommendations",
        metadata={
            **made_by,
            "users": out.recommendations["user_id"].n_unique(),
            "seconds": seconds,
            **timing,
            "headline_refuted": refuted,
            **md.table_metadata(out.recommendations, preview=15),
        },
    )
    yield dg.Output(out.test_scores, "test_scores", metadata={**made_by, **md.table_metadata(out.test_scores)})
    start = time.perf_counter()
    reasons, note = explain_recommendations(ranker, out.recommendations, inputs.users, inputs.items)
    meta = {**made_by, "explained": note, "seconds": md.rounded(time.perf_counter() - start)}
    picture = modifier_plot(reasons)
    if picture is not None:
        meta["plot"] = md.picture(picture, "effect modifiers")
    yield dg.Output(reasons, "explanations", metadata={**meta, **md.table_metadata(reasons, preview=15)})


UNKNOWN = "unknown (no refutation recorded)"


def refutation_verdict(context: dg.AssetExecutionContext) -> str:
    """What the latest ``treatment_effects`` materialization says was refuted ("no": nothing)."""
    key = context.asset_key_for_input("treatment_effects")
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    value = materialization.metadata.get(REFUTED) if materialization is not None else None
    return str(value.value) if value is not None else UNKNOWN


@dg.asset(group_name="ranking", owners=OWNERS, kinds={"scikit-learn"})
def evaluation(interactions: pl.DataFrame, test_scores: pl.DataFrame) -> dg.Output:
    """Ranking quality on the randomized test slice (when the data has one): AUC, NDCG@5 and
    recall@5 at each relevance threshold and convention, MSE/MAE, AUUC and Qini, each beside
    what random scores and an oracle would get, and which of them fit the ranking: AUUC and Qini
    judge an uplift ranking (which does not aim at relevance, so its AUC may sit near 0.5); AUC,
    NDCG and recall judge a relevance ranking. The Qini plot is the ``plot`` row of the metadata."""
    interactions = with_default_split(interactions)
    table = evaluate(interactions, test_scores)
    target = ranking_target(interactions)
    report = evaluation_report(interactions, test_scores, table)
    picture = evaluation_plot(interactions, test_scores, table)
    meta: dict = {
        "ranking_target": target,
        "metrics_that_fit": ", ".join(report.filter(pl.col("fits_ranking"))["metric"]) or "none",
        "why": TARGET_NOTES[target],
    }
    if picture is not None:
        meta["plot"] = md.picture(picture, "evaluation")
    else:
        meta["note"] = "no split = test rows: nothing to evaluate on"
    meta["table"] = md.table(report, rows=60)
    meta |= {r["metric"]: md.rounded(float(r["value"])) for r in table.iter_rows(named=True) if r["value"] is not None}
    meta |= md.table_metadata(table, preview=0)
    return dg.Output(table, metadata=meta)


class PolicyValueConfig(dg.Config):
    """How long a list the policies are valued at."""

    k: int = Field(default=5, ge=1, description="Pairs each policy lists from a user's randomized slice pairs.")


@dg.asset(group_name="ranking", owners=OWNERS, kinds={"scikit-learn"})
def policy_value(config: PolicyValueConfig, interactions: pl.DataFrame, test_scores: pl.DataFrame) -> dg.Output:
    """What each ranking policy's top-K list would earn, off-policy from the randomized slice: the
    ranking's list of each user's slice pairs beside popularity's, the logging policy's and a
    random list's; the outcome rate of a listed pair if shown and (both arms tested) what showing
    it adds; IPS, self-normalised IPS, the direct method and doubly robust, 95% intervals
    clustered by user (``causalrec_toolkit.policy``)."""
    interactions = with_default_split(interactions)
    start = time.perf_counter()
    threshold = binarise_threshold(interactions["outcome"])
    table = value_of_lists(interactions, test_scores, config.k, threshold)
    meta: dict = {"k": config.k, "seconds": md.rounded(time.perf_counter() - start)}
    if table.is_empty():
        meta["note"] = "no split = test rows: no list can be valued off-policy without a randomized slice"
        return dg.Output(table, metadata=meta)
    dr = table.filter(pl.col("estimator") == "dr")
    for row in dr.iter_rows(named=True):
        meta[f"{row['policy']}_{row['measure']}_dr"] = md.rounded(row["value"])
    meta["summary"] = value_sentence(table)
    picture = policy_value_plot(table)
    if picture is not None:
        meta["plot"] = md.picture(picture, "policy value")
    meta["table"] = md.table(table.drop("true_value"), rows=40)
    return dg.Output(table, metadata=meta)


def value_sentence(table: pl.DataFrame) -> str:
    """The ranking's doubly robust list value against the best baseline's, in one sentence."""
    dr = table.filter(pl.col("estimator") == "dr")
    measure = "uplift" if "uplift" in dr["measure"].to_list() else "outcome"
    rows = {r["policy"]: r for r in dr.filter(pl.col("measure") == measure).iter_rows(named=True)}
    ours = rows.get("ranking")
    if ours is None:
        return "no ranking scores on the slice"
    others = [r for name, r in rows.items() if name != "ranking"]
    best = max(others, key=lambda r: r["value"]) if others else None
    what = "uplift per listed pair" if measure == "uplift" else "outcome rate per listed pair"
    text = f"the ranking's top-{ours['k']} lists: {what} {estimate_text(ours)}"
    if best is not None:
        text += f"; best baseline ({best['policy']}): {estimate_text(best)}"
    return text


def estimate_text(row: dict) -> str:
    """``+0.1234 [+0.1000, +0.1468]``: a value and its 95% interval."""
    return f"{row['value']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
