"""On simulated worlds whose test slice randomizes exposure, ranking by estimated uplift
targets the pairs that exposure changes: its AUUC beats the relevance ranker's (which ranks
"sure things" first) and popularity's; and the uplift is personal: users with the same
attributes get different lists when their histories differ."""

from __future__ import annotations

import polars as pl
import pytest
from causal_worlds import CONFOUNDERS, scenario

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_plugins.ingest.simulator import TOPICS, SimulatorConfig, simulate
from causalrec_plugins.ranking.popularity import PopularityRanking
from causalrec_plugins.ranking.relevance_rank import RelevanceRanking
from causalrec_plugins.ranking.uplift_rank import UpliftConfig, UpliftRanking, personal_uplift_model
from causalrec_toolkit.bayesnet import fit_network
from causalrec_toolkit.evaluation import evaluate, uplift_capture
from causalrec_toolkit.features import PairFeaturizer
from causalrec_toolkit.rankers import profile_top_k, top_k, unseen_pairs
from causalrec_toolkit.variables import VariableEncoder


def topic_of(text: str) -> str:
    """The simulator's topic of an item, read off its text (stands in for the embed stage)."""
    return next(name for name, (_, nouns, _) in TOPICS.items() if any(noun in text for noun in nouns))


def ranking_inputs(seed: int) -> tuple[RankingInputs, pl.DataFrame]:
    world = simulate(SimulatorConfig(seed=seed, n_users=300, n_items=96, n_topics=4, pairs_per_user=30))
    topics = world.items.select(
        "item_id", pl.col("text").map_elements(topic_of, return_dtype=pl.String).alias("item_topic")
    )
    train = train_rows(world.interactions)
    encoder = VariableEncoder().fit(world.users, world.items, train, topics)
    variables = encoder.transform(train)
    assert world.truth is not None
    edges = list(world.truth.edges)
    inputs = RankingInputs(
        users=world.users,
        items=world.items,
        interactions=world.interactions,
        item_embeddings=pl.DataFrame(),
        user_embeddings=pl.DataFrame(),
        variables=variables,
        variable_encoder=encoder,
        edges=edges,
        network=fit_network(variables.select(world.truth.nodes), edges),
        treatment_effects=pl.DataFrame(),
        pair_featurizer=PairFeaturizer().fit(world.users, world.items, train, None, topics),
    )
    return inputs, world.interactions


@pytest.mark.parametrize("seed", [3, 4])
def test_uplift_ranking_beats_relevance_and_popularity_on_auuc(seed: int) -> None:
    inputs, interactions = ranking_inputs(seed)
    auuc = {}
    for name, plugin in [
        ("uplift", UpliftRanking()),
        ("relevance", RelevanceRanking(RelevanceRanking.Config(mf_weight_decay=[0.1, 1.0], mf_epochs=100))),
        ("popularity", PopularityRanking()),
    ]:
        out = plugin.rank(inputs, PluginContext())
        metrics = dict(evaluate(interactions, out.test_scores).rows())
        auuc[name] = metrics["auuc"]
        assert {"auuc", "qini", "auc"} <= set(metrics)
    assert auuc["uplift"] > auuc["relevance"] + 0.01, auuc
    assert auuc["uplift"] > auuc["popularity"] + 0.03, auuc


def test_uplift_ranking_refuses_rating_data() -> None:
    inputs, interactions = ranking_inputs(3)
    ratings = interactions.with_columns(pl.lit(1, pl.Int8).alias("exposure"))
    inputs.interactions = ratings
    with pytest.raises(ValueError, match="needs training rows with exposure = 0"):
        UpliftRanking().rank(inputs, PluginContext())


def test_rankers_are_registered_as_ranking_plugins() -> None:
    from importlib.metadata import entry_points

    from causalrec_plugins.ranking.causal_rank import CausalRanking

    registered = {ep.name: ep.value for ep in entry_points(group="causalrec.ranking")}
    for name, cls in [
        ("causal", CausalRanking),
        ("uplift", UpliftRanking),
        ("relevance", RelevanceRanking),
        ("popularity", PopularityRanking),
    ]:
        assert registered.get(name) == f"{cls.__module__}:{cls.__name__}", name


@pytest.fixture(scope="module")
def taste_world():
    """Each user's taste over topics is in no table (users only have a region): only their
    history and the items' texts reveal it, and it drives the policy, the baseline and the
    effect."""
    return scenario("taste", seed=2, n_users=500, n_items=96, pairs=30)


def test_personal_uplift_tells_apart_users_with_the_same_attributes(taste_world) -> None:
    inputs = taste_world.ranking_inputs(CONFOUNDERS["taste"])
    recs = UpliftRanking().rank(inputs, PluginContext()).recommendations
    lists = recs.sort("rank").group_by("user_id", maintain_order=True).agg("item_id", "score")
    lists = lists.join(taste_world.world.users, on="user_id")
    for _, same in lists.group_by("region"):
        assert same["item_id"].n_unique() > 0.9 * same.height  # nearly every user has a list of their own
    distinct = lists["score"].list.n_unique()
    assert distinct.mean() > 5 and (distinct == 1).mean() < 0.02  # ties only where the model cannot tell


def test_personal_uplift_captures_more_than_segment_level_uplift(taste_world) -> None:
    inputs = taste_world.ranking_inputs(CONFOUNDERS["taste"])
    world = taste_world.world
    candidates = unseen_pairs(world.users, world.items, world.interactions)
    capture = {}
    for model in ("dr_learner", "bn_do_query"):
        recs = UpliftRanking(UpliftConfig(uplift_model=model)).rank(inputs, PluginContext()).recommendations
        capture[model] = uplift_capture(recs, world.truth.uplift, candidates)
    random = candidates.join(world.truth.uplift, on=["user_id", "item_id"])["uplift"].mean()
    oracle = (
        candidates.join(world.truth.uplift, on=["user_id", "item_id"])
        .sort("uplift", descending=True)
        .group_by("user_id")
        .head(10)["uplift"]
        .mean()
    )
    assert capture["dr_learner"] > capture["bn_do_query"] + 0.05, capture
    assert capture["dr_learner"] > random / oracle + 0.2, (capture, random / oracle)


def test_top_k_over_user_profiles_is_exactly_top_k_over_every_pair(taste_world) -> None:
    """Where the uplift model reads only the user's and the item's own features, each user
    profile's items are scored once and the top-K lists equal those of scoring every unseen pair
    (ties included); with pair-level features (taste, history) every pair is scored as before."""
    inputs, _ = ranking_inputs(3)
    scorer, user_profiles = personal_uplift_model(inputs, UpliftConfig())
    assert user_profiles is not None
    assert user_profiles["profile"].n_unique() < inputs.users.height / 10
    everything = top_k(scorer(unseen_pairs(inputs.users, inputs.items, inputs.interactions)), 10)
    fast = profile_top_k(scorer, user_profiles, inputs.items, inputs.interactions, 10)
    assert fast.equals(everything)
    _, personal = personal_uplift_model(taste_world.ranking_inputs(CONFOUNDERS["taste"]), UpliftConfig())
    assert personal is None
