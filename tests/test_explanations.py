"""Why a recommendation: exact Shapley values of feature groups add up to the score's distance
from the background's mean and give a group its own effect; the uplift ranker names the effect
modifiers the world's effect truly varies with; rankers that cannot explain leave an empty,
typed table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from causal_worlds import CONFOUNDERS, scenario

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.explanations import SCHEMA, explain_recommendations
from causalrec_assets.stages.ranking.protocol import Ranker
from causalrec_assets.testing import check_conformance
from causalrec_plugins.ranking.popularity import PopularityRanking
from causalrec_plugins.ranking.uplift_rank import UpliftRanking
from causalrec_toolkit.explain import column_groups, group_shapley, top_contributions


def test_shapley_values_add_up_and_split_a_sum_by_its_terms() -> None:
    rng = np.random.default_rng(0)
    x, background = rng.normal(size=(40, 4)), rng.normal(size=(12, 4))

    def f(z: np.ndarray) -> np.ndarray:
        return 3 * z[:, 0] - z[:, 1] + z[:, 2] * z[:, 3]

    values = group_shapley(f, x, background, [[0], [1], [2, 3]])
    np.testing.assert_allclose(values.sum(axis=1), f(x) - f(background).mean(), atol=1e-12)
    np.testing.assert_allclose(values[:, 0], 3 * (x[:, 0] - background[:, 0].mean()), atol=1e-12)
    np.testing.assert_allclose(values[:, 1], -(x[:, 1] - background[:, 1].mean()), atol=1e-12)
    twice = group_shapley(f, np.vstack([x, x]), background, [[0], [1], [2, 3]])
    np.testing.assert_allclose(twice[:40], twice[40:])  # identical rows, explained once, alike
    assert top_contributions(np.array([[0.1, -0.5, 0.2]]), ["a", "b", "c"], 2) == [[("b", -0.5), ("c", 0.2)]]


def test_too_many_groups_pool_the_smallest_as_other() -> None:
    columns = [f"c{i}" for i in range(14)]
    groups = {f"g{i}": [f"c{i}"] for i in range(12)} | {"big": ["c12", "c13"]}
    names, indices = column_groups(columns, groups, limit=5)
    assert names[-1] == "other" and len(names) == 5 and "big" in names
    assert sorted(i for idx in indices for i in idx) == list(range(14))


@pytest.fixture(scope="module")
def world():
    return scenario("interaction", 0)


def test_the_uplift_ranker_explains_each_recommendation_by_effect_modifiers(world) -> None:
    """The interaction world's effect varies with the user's age group and the item's category
    (``item_topic``): those lead the explanations; each pair's values come in a few rows."""
    inputs = world.ranking_inputs(CONFOUNDERS["interaction"])
    ranker = UpliftRanking().fit(inputs, PluginContext())
    recommendations = ranker.recommend(inputs.users.head(50), inputs.interactions)
    table, note = explain_recommendations(ranker, recommendations, inputs.users, inputs.items)
    assert note.startswith("50 of 50 users")
    assert set(SCHEMA) == set(table.columns)
    per_pair = table.group_by("user_id", "item_id").len()
    assert per_pair.height == recommendations.height and per_pair["len"].max() <= 3
    leading = table.group_by("user_id", "item_id").first()["modifier"].value_counts().sort("count", descending=True)
    assert leading["modifier"][0] in {"age_group", "item_topic", "category"}, leading
    ages = table.filter(pl.col("modifier") == "age_group")
    assert ages.is_empty() or ages["value"].null_count() == 0  # an attribute's value is shown


def test_a_ranker_that_cannot_explain_leaves_an_empty_typed_table(world) -> None:
    inputs = world.ranking_inputs(CONFOUNDERS["interaction"])
    ranker = PopularityRanking().fit(inputs, PluginContext())
    recommendations = ranker.recommend(inputs.users.head(5), inputs.interactions)
    table, note = explain_recommendations(ranker, recommendations, inputs.users, inputs.items)
    assert table.is_empty() and "does not explain" in note
    assert table.schema["user_id"] == recommendations.schema["user_id"]
    table, note = explain_recommendations(None, recommendations, inputs.users, inputs.items)
    assert table.is_empty() and "rank() only" in note


class StrangerExplainer(Ranker):
    """Recommends as popularity does, and explains a pair it was not asked about."""

    def __init__(self, inner: Ranker) -> None:
        self.inner, self.k = inner, inner.k

    def score(self, pairs: pl.DataFrame) -> pl.DataFrame:
        return self.inner.score(pairs)

    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        return self.inner.recommend(users, seen)

    def explain(self, recommendations: pl.DataFrame) -> pl.DataFrame:
        row = recommendations.head(1).select("user_id", "item_id")
        stranger = row.with_columns(pl.lit("no-such-item").cast(row.schema["item_id"]).alias("item_id"))
        return stranger.with_columns(pl.lit("age_group").alias("modifier"), pl.lit(0.1).alias("contribution"))


class StrangerRanking(PopularityRanking):
    def fit(self, inputs, context):
        return StrangerExplainer(super().fit(inputs, context))


def test_the_kit_refuses_explanations_of_pairs_not_recommended() -> None:
    report = check_conformance(StrangerRanking, checks=["row_invariants"])
    assert not report.ok
    assert "explain() explained 1 pair(s) it was not asked about" in report.results[0].detail
    assert check_conformance(UpliftRanking, checks=["row_invariants"]).ok
