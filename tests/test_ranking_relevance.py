"""The debiased relevance ranker on missing-not-at-random ratings: side features rank cold
items, debiasing beats the naive MF on a randomized slice, and nothing of the test slice
reaches training (poisoned test labels leave every output unchanged)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_plugins.ranking.causal_rank import CausalRanking
from causalrec_plugins.ranking.popularity import PopularityRanking
from causalrec_plugins.ranking.relevance_model import (
    DebiasedMF,
    ObservationPropensity,
    PairUniverse,
    SideFeatures,
    build_side_features,
    select_and_fit,
    validation_split,
)
from causalrec_plugins.ranking.relevance_rank import RelevanceRanking
from causalrec_toolkit.evaluation import evaluate

GENRES = ["drama", "comedy", "horror"]


def mnar_ratings(seed: int = 0, n_users: int = 200, n_items: int = 90, cold: int = 6) -> dict[str, pl.DataFrame]:
    """Users like one genre (an attribute) and rate 1–5; they choose to rate what they like
    (missing not at random). The last ``cold`` items have no training ratings. A test slice
    rates 8 uniformly random items per user."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 3, n_users)
    genre = np.arange(n_items) % 3
    quality = rng.normal(0, 0.5, n_items)
    latent = 2.0 * (taste[:, None] == genre[None, :]) + quality[None, :] + rng.normal(0, 0.6, (n_users, n_items))
    ratings = np.clip(np.round(1.5 + latent + rng.normal(0, 0.4, latent.shape)), 1, 5)
    select = 1 / (1 + np.exp(-(-4.2 + 0.9 * ratings)))  # liked items are rated far more often
    observed = rng.random(ratings.shape) < select
    observed[:, n_items - cold :] = False
    test = np.zeros_like(observed)
    for u in range(n_users):
        test[u, rng.choice(n_items, 8, replace=False)] = True
    rows = []
    for split, mask in (("train", observed), ("test", test)):
        uu, ii = np.nonzero(mask)
        rows.append(
            pl.DataFrame(
                {"user_id": uu, "item_id": ii, "exposure": np.ones(uu.size, np.int8), "outcome": ratings[uu, ii]}
            ).with_columns(pl.lit(split).alias("split"))
        )
    users = pl.DataFrame({"user_id": np.arange(n_users), "favourite": np.array(GENRES)[taste]})
    items = pl.DataFrame(
        {
            "item_id": np.arange(n_items),
            "text": [f"a {GENRES[g]} film" for g in genre],
            "genre": np.array(GENRES)[genre],
        }
    )
    return {"users": users, "items": items, "interactions": pl.concat(rows)}


def inputs_of(tables: dict[str, pl.DataFrame]) -> RankingInputs:
    return RankingInputs(
        users=tables["users"],
        items=tables["items"],
        interactions=tables["interactions"],
        item_embeddings=pl.DataFrame(),
        user_embeddings=pl.DataFrame(),
        variables=pl.DataFrame(),
        variable_encoder=None,
        edges=[],
        network=None,
        treatment_effects=pl.DataFrame(),
    )


@pytest.fixture(scope="module")
def ratings() -> dict[str, pl.DataFrame]:
    return mnar_ratings()


def metrics(tables, out) -> dict[str, float]:
    return dict(evaluate(tables["interactions"], out.test_scores).rows())


@pytest.fixture(scope="module")
def default_and_naive(ratings):
    fast = {"mf_weight_decay": [0.1, 1.0], "mf_epochs": 150}
    default = RelevanceRanking(RelevanceRanking.Config(**fast)).rank(inputs_of(ratings), PluginContext())
    naive_cfg = RelevanceRanking.Config(weighting="none", side_features=False, **fast)
    naive = RelevanceRanking(naive_cfg).rank(inputs_of(ratings), PluginContext())
    ips_cfg = RelevanceRanking.Config(weighting="ips", side_features=False, **fast)
    ips = RelevanceRanking(ips_cfg).rank(inputs_of(ratings), PluginContext())
    return default, naive, ips


def test_debiased_relevance_beats_the_naive_mf_on_the_random_slice(ratings, default_and_naive) -> None:
    default, naive, _ = default_and_naive
    ours, theirs = metrics(ratings, default), metrics(ratings, naive)
    assert ours["auc[outcome>=3]"] > theirs["auc[outcome>=3]"] + 0.03, (ours, theirs)
    assert ours["ndcg@5_no_relevant_as_1[outcome>=3]"] > theirs["ndcg@5_no_relevant_as_1[outcome>=3]"]
    assert ours["mse"] < theirs["mse"]
    assert default.test_scores.height == ratings["interactions"].filter(pl.col("split") == "test").height


def test_inverse_propensity_weights_correct_the_selection_bias(ratings, default_and_naive) -> None:
    """Same MF, same features: weighting by 1 / P(observed) brings the error on random pairs
    down (users rated what they liked, so the naive fit overrates everything)."""
    _, naive, ips = default_and_naive
    naive_m, ips_m = metrics(ratings, naive), metrics(ratings, ips)
    assert ips_m["mse"] < naive_m["mse"] - 0.1, (ips_m["mse"], naive_m["mse"])
    assert ips_m["auc[outcome>=3]"] > naive_m["auc[outcome>=3]"]


def test_side_features_rank_cold_items_by_what_they_are(ratings, default_and_naive) -> None:
    default, _, _ = default_and_naive
    users, items = ratings["users"], ratings["items"]
    cold = items.tail(6).join(ratings["interactions"].filter(pl.col("split") == "train"), on="item_id", how="anti")
    assert cold.height == 6
    recs = default.recommendations
    assert recs.group_by("user_id").len()["len"].max() == 10
    pairs = users.join(cold.select("item_id", "genre"), how="cross").with_columns(
        (pl.col("favourite") == pl.col("genre")).alias("match")
    )
    plugin = RelevanceRanking(RelevanceRanking.Config(mf_weight_decay=[0.3], mf_epochs=150))
    scored = plugin.rank(
        inputs_of({**ratings, "interactions": pl.concat([ratings["interactions"], extra_test_rows(pairs)])}),
        PluginContext(),
    ).test_scores.join(pairs, on=["user_id", "item_id"])
    means = scored.group_by("match").agg(pl.col("score").mean()).sort("match")["score"].to_list()
    assert means[1] > means[0] + 0.5  # a cold item of the user's favourite genre scores higher


def extra_test_rows(pairs: pl.DataFrame) -> pl.DataFrame:
    """Extra ``split = test`` rows (scored only) for the given pairs."""
    return pairs.select(
        pl.col("user_id"),
        pl.col("item_id"),
        pl.lit(1, pl.Int8).alias("exposure"),
        pl.lit(3.0).alias("outcome"),
        pl.lit("test").alias("split"),
    )


def poisoned(tables: dict[str, pl.DataFrame], seed: int = 1) -> dict[str, pl.DataFrame]:
    """The same log with every test label replaced by noise (and flipped binary outcomes)."""
    rng = np.random.default_rng(seed)
    inter = tables["interactions"]
    is_test = (inter["split"] == "test").to_numpy()
    outcome = inter["outcome"].to_numpy().astype(float).copy()
    if set(np.unique(outcome)) <= {0.0, 1.0}:
        outcome[is_test] = 1 - outcome[is_test]
        exposure = inter["exposure"].to_numpy().copy()
        exposure[is_test] = 1 - exposure[is_test]
    else:
        outcome[is_test] = rng.integers(1, 6, int(is_test.sum()))
        exposure = inter["exposure"].to_numpy()
    poisoned_inter = inter.with_columns(
        pl.Series("outcome", outcome).cast(inter.schema["outcome"]),
        pl.Series("exposure", exposure).cast(inter.schema["exposure"]),
    )
    assert not poisoned_inter.equals(inter)
    return {**tables, "interactions": poisoned_inter}


@pytest.mark.parametrize(
    "plugin",
    [
        RelevanceRanking(RelevanceRanking.Config(mf_weight_decay=[0.1, 1.0], mf_epochs=60)),
        RelevanceRanking(RelevanceRanking.Config(weighting="dr", mf_weight_decay=[0.3], mf_epochs=30)),
        PopularityRanking(),
    ],
    ids=["relevance_ips", "relevance_dr", "popularity"],
)
def test_poisoned_test_labels_leave_training_unchanged(ratings, plugin) -> None:
    from causalrec_toolkit.variables import VariableEncoder

    outs = []
    for tables in (ratings, poisoned(ratings)):
        inputs = inputs_of(tables)
        inputs.variable_encoder = VariableEncoder().fit(
            tables["users"], tables["items"], tables["interactions"].filter(pl.col("split") == "train")
        )
        outs.append(plugin.rank(inputs, PluginContext()))
    assert outs[0].recommendations.equals(outs[1].recommendations)
    assert outs[0].test_scores.equals(outs[1].test_scores)


def test_poisoned_test_slice_leaves_the_uplift_ranker_unchanged(small_world) -> None:
    from causalrec_assets.contracts import train_rows
    from causalrec_toolkit.bayesnet import fit_network
    from causalrec_toolkit.variables import VariableEncoder

    outs = []
    tables = {"users": small_world.users, "items": small_world.items, "interactions": small_world.interactions}
    for world in (tables, poisoned(tables)):
        encoder = VariableEncoder().fit(world["users"], world["items"], train_rows(world["interactions"]))
        variables = encoder.transform(train_rows(world["interactions"]))
        edges = [("age_group", "exposure"), ("age_group", "outcome"), ("price_tier", "outcome")]
        edges += [("exposure", "outcome")]
        inputs = inputs_of(world)
        inputs.variables, inputs.variable_encoder, inputs.edges = variables, encoder, edges
        inputs.network = fit_network(variables, edges)
        outs.append(CausalRanking(CausalRanking.Config(k=5)).rank(inputs, PluginContext()))
    assert outs[0].recommendations.equals(outs[1].recommendations)
    assert outs[0].test_scores.equals(outs[1].test_scores)


# ------------------------------------------------------------------ building blocks


def indexed(tables):
    train = tables["interactions"].filter(pl.col("split") == "train")
    return train["user_id"].to_numpy(), train["item_id"].to_numpy(), train["outcome"].to_numpy().astype(float)


def test_observation_propensity_is_calibrated_and_sees_the_selection(ratings) -> None:
    u, i, _ = indexed(ratings)
    side = build_side_features(ratings["users"], ratings["items"], use_text=False)
    universe = PairUniverse(ratings["users"].height, ratings["items"].height)
    model = ObservationPropensity(clip=0.01).fit(u, i, side, universe)
    every_u, every_i = universe.sample(universe.size, np.random.default_rng(0))
    p = model.predict(every_u, every_i)
    assert p.min() >= 0.01 and p.max() <= 1.0
    assert p.mean() == pytest.approx(len(u) / universe.size, rel=0.1)
    favourite = ratings["users"]["favourite"].to_numpy()[every_u] == ratings["items"]["genre"].to_numpy()[every_i]
    assert p[favourite].mean() > 2 * p[~favourite].mean()  # users rate their favourite genre more


def test_model_selection_uses_only_the_training_rows_and_a_grid(ratings) -> None:
    u, i, r = indexed(ratings)
    n_users, n_items = ratings["users"].height, ratings["items"].height
    side = build_side_features(ratings["users"], ratings["items"])
    universe = PairUniverse(n_users, n_items)
    prop_model = ObservationPropensity().fit(u, i, side, universe)
    prop = prop_model.predict(u, i)

    def make(**kw):
        return DebiasedMF(**{"epochs": 40, "eval_every": 10, **kw})

    model, selection = select_and_fit(make, [0.01, 3.0], u, i, r, side, universe, prop, seed=0)
    assert selection.table.height == 2 and selection.weight_decay in (0.01, 3.0)
    assert 10 <= selection.epochs <= 40
    assert model.predict(u[:5], i[:5]).shape == (5,)
    mask = validation_split(u, 0.2, np.random.default_rng(0))
    counts = np.bincount(u[~mask], minlength=n_users)
    assert (counts[np.bincount(u, minlength=n_users) > 0] >= 1).all()  # every user keeps fitting rows
    assert 0.1 < mask.mean() < 0.3


def test_bad_settings_are_named() -> None:
    side = SideFeatures.empty(2, 2)
    universe = PairUniverse(2, 2)
    args = (np.array([0, 1]), np.array([0, 1]), np.array([1.0, 2.0]), side, universe)
    with pytest.raises(ValueError, match="weighting='ips' needs the propensity"):
        DebiasedMF(weighting="ips").fit(*args)
    with pytest.raises(ValueError, match="weighting='dr' needs the propensity"):
        DebiasedMF(weighting="dr").fit(*args)
    with pytest.raises(ValueError, match="weighting must be one of"):
        DebiasedMF(weighting="magic").fit(*args)  # type: ignore[arg-type]
