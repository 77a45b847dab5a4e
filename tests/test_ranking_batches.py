"""Ranking in bounded memory: a fitted ranker asked for its lists one batch of users at a time,
user shard by user shard, gives exactly the lists of scoring every candidate pair at once; the
streaming top-K equals the top-K of everything; shards run on a Dask LocalCluster give the same
lists as shards run in process; plugins written before the fit/score split still rank."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from causal_worlds import CONFOUNDERS, scenario
from test_retrieval import oracle_scorer, personal_world

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import CandidateConfig, PluginContext
from causalrec_assets.registry import check_plugin
from causalrec_assets.stages.ranking.batches import rank_with, recommend_all
from causalrec_assets.stages.ranking.protocol import RankingOutput, RankingPlugin
from causalrec_plugins.ranking.popularity import PopularityRanking
from causalrec_resources.compute import ComputeResource
from causalrec_toolkit.embeddings import user_profiles
from causalrec_toolkit.rankers import StreamingTopK, top_k
from causalrec_toolkit.retrieval import CandidateRanker, candidate_pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_top_k_equals_top_k_of_every_chunk_together(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5_000
    scores = np.round(rng.normal(size=n), 1)  # many ties
    scores[rng.random(n) < 0.05] = np.nan  # and missing scores, which go last
    scored = pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, 60, n)],
            "item_id": [f"i{i:04d}" for i in rng.permutation(n)],
            "score": scores,
        }
    )
    streaming = StreamingTopK(7)
    cuts = np.sort(rng.choice(np.arange(1, n), 12, replace=False))
    for part in np.split(np.arange(n), cuts):
        streaming.push(scored[part])
    assert streaming.result().equals(top_k(scored, 7))


@pytest.fixture(scope="module")
def fitted():
    users, items, log, item_embeddings, truth = personal_world(seed=5, n_users=400, n_items=2000)
    taste, _ = user_profiles(log, item_embeddings)
    cfg = CandidateConfig(nearest_candidates=60, neighbour_candidates=60, prior_candidates=30, explore_candidates=30)
    score = oracle_scorer(truth)
    ranker = CandidateRanker.fit(score, users, items, log, taste, item_embeddings, cfg)
    return ranker, users, items, log, taste, item_embeddings, cfg, score


def test_batched_sharded_lists_equal_scoring_every_candidate_pair_at_once(fitted) -> None:
    ranker, users, items, log, taste, item_embeddings, cfg, score = fitted
    candidates, _ = candidate_pairs(score, users, items, log, taste, item_embeddings, cfg)
    at_once = top_k(score(candidates), cfg.k)
    for shards, batch in [(1, 10_000), (3, 17), (8, 1)]:
        compute = ComputeResource(engine="local", shards=shards)
        lists = recommend_all(ranker, users, log, compute, batch_users=batch)
        assert lists.sort("user_id", "rank").equals(at_once.sort("user_id", "rank")), (shards, batch)
    assert lists["user_id"].unique(maintain_order=True).equals(users["user_id"])  # in the users' order


def test_dask_shards_give_the_in_process_lists(fitted) -> None:
    ranker, users, _, log, *_ = fitted
    local = recommend_all(ranker, users, log, ComputeResource(engine="local", shards=4), batch_users=50)
    dask = ComputeResource(engine="dask", shards=4, dask_workers=2, dask_memory_limit="2GB")
    assert recommend_all(ranker, users, log, dask, batch_users=50).equals(local)


@pytest.fixture(scope="module")
def inputs():
    return scenario("null", seed=1, n_users=200, n_items=60).ranking_inputs(CONFOUNDERS["null"])


def test_popularity_is_one_ranking_for_everyone_without_users_x_items(inputs) -> None:
    """The popularity ranker's lists are every user's best unseen items by the same counts."""
    out = PopularityRanking().rank(inputs, PluginContext())
    seen = train_rows(inputs.interactions).select("user_id", "item_id")
    everyone = inputs.users.select("user_id").join(inputs.items.select("item_id"), how="cross")
    scored = (
        PopularityRanking()
        .fit(inputs, PluginContext())
        .score(everyone.join(seen, on=["user_id", "item_id"], how="anti"))
    )
    assert out.recommendations.sort("user_id", "rank").equals(top_k(scored, 10).sort("user_id", "rank"))


class Legacy(RankingPlugin):
    """A ranker written for plugin API 1.3: ``rank`` only."""

    api_version = "1.3"

    def rank(self, inputs, context) -> RankingOutput:
        popular = PopularityRanking().fit(inputs, context)
        return rank_with(popular, inputs, context)


class Neither(RankingPlugin):
    api_version = "1.4"


def test_a_plugin_needs_fit_or_rank_and_rank_alone_still_works(inputs) -> None:
    assert check_plugin("ranking", Legacy) is None and not Legacy.fits()
    assert "fit (or rank)" in (check_plugin("ranking", Neither) or "")
    legacy = Legacy().rank(inputs, PluginContext())
    assert legacy.recommendations.equals(PopularityRanking().rank(inputs, PluginContext()).recommendations)
