"""Evaluation metrics, candidate pairs, the causal ranker and the IO manager's staging and
publishing, on small data with a known answer (real Dagster)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from plugin_helpers import ctx

from causalrec_assets.publish import build_publish_asset, publish_finished_run
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_plugins.ranking.causal_rank import CausalRanking
from causalrec_resources.storage import CausalrecIOManager
from causalrec_toolkit.bayesnet import fit_network
from causalrec_toolkit.evaluation import evaluate, ndcg_recall_at_k, uplift_curve_metrics
from causalrec_toolkit.rankers import top_k, unseen_pairs
from causalrec_toolkit.variables import VariableEncoder
from tests.conftest import published_files

# ----------------------------------------------------------------- evaluation


def test_ndcg_and_recall_on_a_hand_made_example() -> None:
    frame = pl.DataFrame(
        {
            "user_id": ["a"] * 4 + ["b"] * 2 + ["c"] * 3,
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
            "relevant": [0, 1, 0, 1, 0, 0, 1, 0, 0],
        }
    )
    out = ndcg_recall_at_k(frame, k=2)
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert out["ndcg@2"] == pytest.approx((ndcg_a + 1.0) / 2)  # b has nothing relevant: skipped
    assert out["ndcg@2_no_relevant_as_1"] == pytest.approx((ndcg_a + 1.0 + 1.0) / 3)
    assert out["recall@2"] == pytest.approx((0.5 + 1.0) / 2)


def test_ndcg_k_larger_than_the_list() -> None:
    frame = pl.DataFrame({"user_id": [1, 1], "score": [0.2, 0.9], "relevant": [1, 0]})
    out = ndcg_recall_at_k(frame, k=5)
    assert out["ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert out["recall@5"] == 1.0


def test_evaluate_auc_ndcg_on_exposed_test_rows() -> None:
    interactions = pl.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "a"],
            "item_id": [1, 2, 1, 2, 3],
            "exposure": [1, 1, 1, 1, 1],
            "outcome": [1, 0, 1, 0, 1],
            "split": ["test", "test", "test", "test", "train"],
        }
    )
    scores = pl.DataFrame({"user_id": ["a", "a", "b", "b"], "item_id": [1, 2, 1, 2], "score": [0.9, 0.1, 0.4, 0.5]})
    metrics = dict(evaluate(interactions, scores, k=1).rows())
    assert metrics["test_rows"] == 4
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["ndcg@1"] == pytest.approx(0.5)
    assert metrics["recall@1"] == pytest.approx(0.5)
    assert "auuc" not in metrics  # one exposure arm: no uplift metrics


def test_evaluate_without_test_rows() -> None:
    interactions = pl.DataFrame({"user_id": [1], "item_id": [1], "exposure": [1], "outcome": [1], "split": ["train"]})
    out = evaluate(interactions, pl.DataFrame({"user_id": [1], "item_id": [1], "score": [0.5]}))
    assert out.rows() == [("test_rows", 0.0)]


@pytest.fixture(scope="module")
def uplift_log() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 4000
    uplift = rng.uniform(-0.3, 0.5, n)
    treated = (rng.random(n) < 0.5).astype(int)
    y = (rng.random(n) < 0.3 + treated * uplift).astype(float)
    return uplift, treated, y


def test_uplift_metrics_prefer_the_true_uplift_order(uplift_log) -> None:
    uplift, treated, y = uplift_log
    perfect = uplift_curve_metrics(uplift, treated, y)
    reversed_ = uplift_curve_metrics(-uplift, treated, y)
    assert perfect["auuc"] > reversed_["auuc"] + 0.1
    assert perfect["qini"] > reversed_["qini"] + 0.05
    assert perfect["qini"] > 0 > reversed_["qini"]


def test_evaluate_reports_uplift_metrics_when_both_arms_are_tested(uplift_log) -> None:
    uplift, treated, y = uplift_log
    n = uplift.size
    interactions = pl.DataFrame(
        {
            "user_id": np.arange(n) // 20,
            "item_id": np.arange(n) % 20,
            "exposure": treated,
            "outcome": y,
            "split": ["test"] * n,
        }
    )
    pairs = interactions.select("user_id", "item_id")
    good = dict(evaluate(interactions, pairs.with_columns(score=pl.Series(uplift))).rows())
    bad = dict(evaluate(interactions, pairs.with_columns(score=pl.Series(-uplift))).rows())
    assert good["auuc"] > bad["auuc"]
    assert good["qini"] > bad["qini"]
    assert {"auc", "ndcg@5", "recall@5"} <= set(good)


# ----------------------------------------------------------------- candidates


def test_top_k_ranks_in_score_order_per_user() -> None:
    scored = pl.DataFrame(
        {
            "user_id": ["b", "a", "a", "a", "b", "a", "b"],
            "item_id": ["x", "x", "y", "z", "y", "w", "z"],
            "score": [0.1, 0.5, 0.9, 0.5, 0.7, 0.2, 0.7],
        }
    )
    out = top_k(scored, 2)
    assert out.columns == ["user_id", "item_id", "rank", "score"]
    rows = out.sort("user_id", "rank").rows()
    # a: y (0.9), then x and z tie at 0.5 and x wins on item_id; b: y and z tie at 0.7.
    assert rows == [("a", "y", 1, 0.9), ("a", "x", 2, 0.5), ("b", "y", 1, 0.7), ("b", "z", 2, 0.7)]
    assert out.schema["rank"] == pl.Int32
    assert top_k(scored, 10).group_by("user_id").agg(pl.col("rank").max()).sort("user_id").rows() == [
        ("a", 4),
        ("b", 3),
    ]


def test_top_k_ranks_missing_scores_last() -> None:
    scored = pl.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3], "score": [0.5, None, float("nan")]})
    assert top_k(scored, 1)["item_id"].to_list() == [1]


def test_unseen_pairs_excludes_training_pairs() -> None:
    users = pl.DataFrame({"user_id": [1, 2]})
    items = pl.DataFrame({"item_id": [10, 20, 30]})
    interactions = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2],
            "item_id": [10, 20, 30, 10],
            "exposure": [1, 0, 1, 0],
            "outcome": [1, 0, 0, 0],
            "split": ["train", "train", "train", "test"],
        }
    )
    out = unseen_pairs(users, items, interactions).sort("user_id", "item_id")
    assert out.rows() == [(1, 30), (2, 10), (2, 20)]  # (2, 10) is only a test pair
    no_split = unseen_pairs(users, items, interactions.drop("split")).sort("user_id", "item_id")
    assert no_split.rows() == [(1, 30), (2, 20)]


# -------------------------------------------------------------------- storage


def test_io_manager_round_trip(tmp_path: Path) -> None:
    table = pl.DataFrame({"user_id": ["u1", "u2"], "score": [0.5, 0.25], "rank": [1, 2]})
    graph = {"nodes": ["exposure", "outcome"], "edges": [["exposure", "outcome"]]}
    seen = {}

    @dg.asset
    def recommendations() -> pl.DataFrame:
        return table

    @dg.asset
    def causal_graph() -> dict:
        return graph

    @dg.asset
    def downstream(recommendations: pl.DataFrame, causal_graph: dict) -> pl.DataFrame:
        seen["recommendations"], seen["causal_graph"] = recommendations, causal_graph
        return recommendations.with_columns(pl.lit(len(causal_graph["edges"])).alias("n_edges"))

    publish = build_publish_asset([recommendations.key, causal_graph.key, downstream.key])
    result = dg.materialize(
        [recommendations, causal_graph, downstream, publish],
        resources={"io_manager": CausalrecIOManager(base_dir=str(tmp_path))},
    )
    assert result.success
    assert seen["recommendations"].equals(table)
    assert seen["causal_graph"] == graph

    assert json.loads((tmp_path / "causal_graph.json").read_text()) == graph
    assert not (tmp_path / "causal_graph.parquet").exists()
    assert pl.read_parquet(tmp_path / "recommendations.parquet").equals(table)
    assert pl.read_parquet(tmp_path / "downstream.parquet")["n_edges"].to_list() == [1, 1]
    files = published_files(tmp_path)
    assert sorted(files) == ["causal_graph.json", "downstream.parquet", "recommendations.parquet"]
    staged = [p.name for p in (tmp_path / ".causalrec").rglob("*") if p.name.endswith(".tmp")]
    assert staged == []  # written through temporary files, none left behind

    # A second run of one asset publishes it and carries the others forward unchanged.
    again = dg.materialize(
        [recommendations, publish], resources={"io_manager": CausalrecIOManager(base_dir=str(tmp_path))}
    )
    assert again.success
    assert published_files(tmp_path) == files


def test_io_manager_rejects_other_objects(tmp_path: Path) -> None:
    @dg.asset
    def not_a_table() -> list:
        return [1, 2, 3]

    with pytest.raises(TypeError, match="must be a polars DataFrame or LazyFrame .stored as Parquet., got list"):
        dg.materialize([not_a_table], resources={"io_manager": CausalrecIOManager(base_dir=str(tmp_path))})
    assert published_files(tmp_path) == {}


# -------------------------------------------------------------------- ranking


def test_causal_ranking_scores_cold_items_with_unseen_levels() -> None:
    rng = np.random.default_rng(0)
    users = pl.DataFrame({"user_id": [f"u{i}" for i in range(10)]})
    items = pl.DataFrame({"item_id": [f"i{i}" for i in range(5)], "price_tier": ["a", "b", "a", "b", "c"]})
    pairs = [(f"u{u}", f"i{i}") for u in range(10) for i in range(4)]  # i4 (tier "c") never logged
    train = pl.DataFrame(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "exposure": rng.integers(0, 2, len(pairs)),
            "outcome": rng.integers(0, 2, len(pairs)),
            "split": ["train"] * len(pairs),
        }
    )
    encoder = VariableEncoder().fit(users, items, train)
    variables = encoder.transform(train)
    edges = [("price_tier", "exposure"), ("price_tier", "outcome"), ("exposure", "outcome")]
    inputs = RankingInputs(
        users=users,
        items=items,
        interactions=train,
        item_embeddings=pl.DataFrame(),
        user_embeddings=pl.DataFrame(),
        variables=variables,
        variable_encoder=encoder,
        edges=edges,
        network=fit_network(variables, edges),
        treatment_effects=pl.DataFrame(),
    )
    out = CausalRanking(CausalRanking.Config(k=5)).rank(inputs, ctx())
    assert out.recommendations.filter(pl.col("item_id") == "i4").height == 10


def test_a_subset_run_without_the_publishing_step_is_published_by_the_sensor_rule(tmp_path: Path) -> None:
    @dg.asset
    def recommendations() -> pl.DataFrame:
        return pl.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "rank": [1], "score": [0.5]})

    instance = dg.DagsterInstance.ephemeral()
    io = {"io_manager": CausalrecIOManager(base_dir=str(tmp_path))}
    result = dg.materialize([recommendations], resources=io, instance=instance)
    assert result.success and published_files(tmp_path) == {}  # staged only
    run = instance.get_run_by_id(result.run_id)
    assert publish_finished_run(instance, run).startswith(f"published run {result.run_id}")
    assert list(published_files(tmp_path)) == ["recommendations.parquet"]
    assert publish_finished_run(instance, run).endswith("is published already")
