"""Candidate generation (``causalrec_toolkit.retrieval``): with a perfect scorer, a few
hundred candidates per user hold most of each user's true top-10 uplift items, far more than
as many random items, on a world whose uplift is personal at the level of single items."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from causalrec_assets.plugin_api import CandidateConfig
from causalrec_toolkit.embeddings import user_profiles
from causalrec_toolkit.rankers import top_k, unseen_pairs
from causalrec_toolkit.retrieval import candidate_pairs, nearest_items


def personal_world(seed: int, n_users: int = 600, n_items: int = 3000, dim: int = 16, clusters: int = 30):
    """Items in ``clusters`` clusters of an embedding space; each user likes a few clusters;
    the uplift of showing an item peaks where the user's taste is moderate (persuadable), plus
    a per-item and a per-pair part: every (user, item) pair has an uplift of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    member = rng.integers(0, clusters, n_items)
    vectors = centres[member] + 0.5 * rng.normal(size=(n_items, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    taste = rng.dirichlet(np.full(clusters, 0.15), n_users) @ centres
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    similarity = taste @ vectors.T
    uplift = np.exp(-0.5 * ((similarity - 0.45) / 0.12) ** 2) + 0.3 * rng.normal(0, 0.2, n_items)[None, :]
    users = pl.DataFrame({"user_id": [f"u{k:04d}" for k in range(n_users)]})
    items = pl.DataFrame({"item_id": [f"i{k:05d}" for k in range(n_items)]})
    logged = np.argsort(-similarity + rng.normal(0, 0.3, similarity.shape), axis=1)[:, :30]  # what they engaged with
    log = pl.DataFrame(
        {
            "user_id": users["user_id"].gather(np.repeat(np.arange(n_users), 30)),
            "item_id": items["item_id"].gather(logged.ravel()),
            "exposure": 1,
            "outcome": 1,
        }
    )
    item_embeddings = items.with_columns(pl.Series("embedding", vectors.astype(np.float32), pl.Array(pl.Float32, dim)))
    truth = pl.DataFrame(
        {
            "user_id": users["user_id"].gather(np.repeat(np.arange(n_users), n_items)),
            "item_id": items["item_id"].gather(np.tile(np.arange(n_items), n_users)),
            "score": uplift.ravel(),
        }
    )
    return users, items, log, item_embeddings, truth


@pytest.fixture(scope="module")
def world():
    return personal_world(seed=3)


def oracle_scorer(truth: pl.DataFrame):
    def score(pairs: pl.DataFrame) -> pl.DataFrame:
        return pairs.select("user_id", "item_id").join(
            truth, on=["user_id", "item_id"], how="left", maintain_order="left"
        )

    return score


def recall(candidates: pl.DataFrame, oracle: pl.DataFrame) -> float:
    return oracle.join(candidates, on=["user_id", "item_id"], how="semi").height / oracle.height


def test_candidates_hold_most_of_the_oracles_top_10(world) -> None:
    users, items, log, item_embeddings, truth = world
    taste, _ = user_profiles(log, item_embeddings)
    cfg = CandidateConfig()
    score = oracle_scorer(truth)
    candidates, sources = candidate_pairs(score, users, items, log, taste, item_embeddings, cfg)
    oracle = top_k(score(unseen_pairs(users, items, log)), 10)
    per_user = candidates.height / users.height
    assert per_user <= cfg.per_user and set(sources) >= {"nearest", "neighbour", "prior", "explore"}
    assert candidates.join(log, on=["user_id", "item_id"], how="semi").is_empty()  # never a logged pair
    random = recall(unseen_pairs(users, items, log).sample(fraction=per_user / (items.height - 30), seed=1), oracle)
    ours = recall(candidates, oracle)
    assert ours >= 0.5 and ours > 3 * random, (ours, random, per_user)


def test_a_small_catalogue_is_ranked_exactly(world) -> None:
    users, items, log, item_embeddings, truth = world
    few = items.head(400)
    log = log.join(few, on="item_id", how="semi")
    candidates, sources = candidate_pairs(
        oracle_scorer(truth), users, few, log, pl.DataFrame(), item_embeddings, CandidateConfig()
    )
    assert sources == {"every unseen item": candidates.height}
    assert candidates.sort("user_id", "item_id").equals(unseen_pairs(users, few, log).sort("user_id", "item_id"))


def test_nearest_items_are_those_of_largest_inner_product(world) -> None:
    users, _, log, item_embeddings, _ = world
    taste, _ = user_profiles(log, item_embeddings)
    found = nearest_items(taste.head(50), item_embeddings, 20)
    exact = taste.head(50)["embedding"].to_numpy() @ item_embeddings["embedding"].to_numpy().T
    want = pl.DataFrame(
        {
            "user_id": taste.head(50)["user_id"].gather(np.repeat(np.arange(50), 20)),
            "item_id": item_embeddings["item_id"].gather(np.argsort(-exact, axis=1)[:, :20].ravel()),
        }
    )
    assert recall(found, want) >= 0.95  # approximate, but nearly exact on 3,000 items
