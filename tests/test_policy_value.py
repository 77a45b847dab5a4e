"""The value of a top-K list, off-policy from the randomized slice: the intervals cover the
list's true value over repeated draws of several simulated worlds, the doubly robust value is
close to the truth, lists are chosen by score alone (not by row order), and the estimators
tell a list that targets uplift from one that does not."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom

from causalrec_plugins.ingest.scenarios import draw_world
from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate
from causalrec_toolkit import list_weights, policy_values, value_of_lists

COVERED = ("ips", "snips", "dr")
DRAWS = {"default": 20, "hidden": 12, "continuous": 12}


def world(kind: str, seed: int):
    if kind == "default":
        return simulate(SimulatorConfig(seed=seed))
    return draw_world(kind, seed=seed, n_users=800, n_items=120, pairs_per_user=30, test_pairs_per_user=10)


def noisy_uplift_scores(data, seed: int) -> pl.DataFrame:
    """A ranking that knows each slice pair's true uplift up to noise (fixed before the slice's
    outcomes are drawn, as a trained ranker's scores are)."""
    test = data.interactions.filter(pl.col("split") == "test").select("user_id", "item_id")
    truth = test.join(data.truth.uplift, on=["user_id", "item_id"], how="left", maintain_order="left")
    noise = np.random.default_rng(1000 + seed).normal(0, 0.03, test.height)
    return truth.select("user_id", "item_id", (pl.col("uplift") + noise).alias("score"))


@cache
def draws(kind: str) -> pl.DataFrame:
    """Every policy's values on ``DRAWS[kind]`` draws of the world (seeds 0, 1, ...)."""
    frames = []
    for seed in range(DRAWS[kind]):
        data = world(kind, seed)
        values = value_of_lists(data.interactions, noisy_uplift_scores(data, seed), 5, 0.5, truth=data.truth.uplift)
        frames.append(values.with_columns(pl.lit(seed).alias("seed")))
    return pl.concat(frames)


@pytest.mark.parametrize("kind", DRAWS)
def test_the_intervals_cover_the_true_value_of_the_lists_over_repeated_draws(kind: str) -> None:
    """95% intervals, for every policy, measure and estimator but ``dm`` (a model's value, given
    without an interval): no more misses than a true 95% interval makes with probability 0.001.
    The hidden world's confounder does not touch the slice, whose exposure was randomized."""
    n = DRAWS[kind]
    fewest = (n - binom.isf(0.001, n, 0.05)) / n
    values = draws(kind).filter(pl.col("estimator").is_in(COVERED))
    covered = values.with_columns(
        ((pl.col("ci_low") <= pl.col("true_value")) & (pl.col("true_value") <= pl.col("ci_high"))).alias("covered")
    )
    coverage = covered.group_by("policy", "measure", "estimator").agg(pl.col("covered").mean())
    assert coverage.height == 4 * 2 * len(COVERED)  # four policies, both measures (the slice has both arms)
    low = coverage.filter(pl.col("covered") < fewest)
    assert low.is_empty(), low


def test_the_doubly_robust_value_is_close_to_the_truth_on_the_default_world() -> None:
    values = draws("default").filter((pl.col("estimator") == "dr") & (pl.col("policy") == "ranking"))
    error = (values["value"] - values["true_value"]).abs()
    assert error.mean() < 0.01, values


def test_an_uplift_list_earns_more_uplift_than_popularity_and_random_ones() -> None:
    """On the default world, what users take anyway gains little from being shown: popularity's
    list has the higher outcome rate and the lower uplift; the estimates must say so as the
    truth does."""
    values = draws("default").filter(pl.col("estimator") == "dr")
    for seed in range(2):
        dr = {
            (r["policy"], r["measure"]): (r["value"], r["true_value"])
            for r in values.filter(pl.col("seed") == seed).iter_rows(named=True)
        }
        for i in (0, 1):  # estimate, truth
            assert dr[("ranking", "uplift")][i] > dr[("random", "uplift")][i] > dr[("popularity", "uplift")][i]
            assert dr[("popularity", "outcome")][i] > dr[("ranking", "outcome")][i]


def test_a_list_is_chosen_by_score_with_ties_broken_by_item_not_by_row_order() -> None:
    pairs = pl.DataFrame({"user_id": ["a"] * 4 + ["b"] * 2, "item_id": ["w", "x", "y", "z", "w", "x"]})
    tied = pairs.with_columns(pl.lit(1.0).alias("score"))
    chosen = tied.with_columns(list_weights(tied, "score", 2))
    shuffled = tied.reverse()
    again = shuffled.with_columns(list_weights(shuffled, "score", 2))
    assert (
        chosen.filter(pl.col("weight") == 1)
        .sort("user_id", "item_id")
        .equals(again.filter(pl.col("weight") == 1).sort("user_id", "item_id"))
    )
    assert chosen.group_by("user_id").agg(pl.col("weight").sum()).sort("user_id")["weight"].to_list() == [2.0, 2.0]
    random = pairs.with_columns(list_weights(pairs, None, 3))
    assert random["weight"].to_list() == [0.75] * 4 + [1.0] * 2  # k / n, at most every pair


def test_no_slice_values_nothing_and_a_slice_that_showed_nothing_is_refused() -> None:
    log = pl.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "exposure": [1, 0], "outcome": [1, 0]})
    scores = pl.DataFrame({"user_id": ["a"], "item_id": ["x"], "score": [1.0]})
    assert value_of_lists(log, scores, 5, 0.5).is_empty()
    unseen = log.with_columns(pl.lit(0).alias("exposure"), pl.lit("test").alias("split"))
    with pytest.raises(ValueError, match="2 rows and none was shown"):
        policy_values(unseen.with_columns(pl.lit(1.0).alias("s")), {"p": "s"}, 1, np.zeros(2))
