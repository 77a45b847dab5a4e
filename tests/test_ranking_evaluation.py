"""The evaluation protocol on rating data: both relevance thresholds, both conventions for
users without a relevant test item, MSE/MAE only for scores on the rating scale, a plot."""

from __future__ import annotations

import math

import polars as pl
import pytest

from causalrec_toolkit.evaluation import evaluate, evaluation_plot, relevance_thresholds

# user a: ratings 5, 3, 1; user b: 2, 1 (nothing >= 3); user c: 4, 3.
RATINGS = pl.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c", "c", "a"],
        "item_id": [1, 2, 3, 1, 2, 1, 3, 4],
        "exposure": [1] * 8,
        "outcome": [5.0, 3.0, 1.0, 2.0, 1.0, 4.0, 3.0, 2.0],
        "split": ["test"] * 7 + ["train"],
    }
)


def scores(values: list[float]) -> pl.DataFrame:
    test = RATINGS.filter(pl.col("split") == "test")
    return test.select("user_id", "item_id").with_columns(pl.Series("score", values))


def test_thresholds_of_ratings_and_clicks() -> None:
    assert relevance_thresholds(RATINGS["outcome"]) == [3.0, 4.0]
    assert relevance_thresholds(pl.Series([0, 1, 1])) == [0.5]


def test_both_thresholds_and_conventions() -> None:
    # a: 5 > 3 > 1 ranked right; b: any order; c: 3 ranked above 4.
    m = dict(evaluate(RATINGS, scores([3.0, 2.0, 1.0, 2.5, 2.0, 2.0, 3.0]), k=1).rows())
    # >= 3: a's top (5) relevant, c's top (3) relevant, b has none.
    assert m["ndcg@1[outcome>=3]"] == pytest.approx(1.0)
    assert m["recall@1[outcome>=3]"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["recall@1_no_relevant_as_1[outcome>=3]"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # >= 4: a's top relevant; c's top (3) is not, its 4 is second; b has none.
    assert m["ndcg@1[outcome>=4]"] == pytest.approx(0.5)
    assert m["ndcg@1_no_relevant_as_1[outcome>=4]"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["ndcg@1"] == m["ndcg@1[outcome>=4]"]  # unsuffixed: the pipeline's own threshold (4)
    # pooled AUC at >= 3: relevant scores {3, 2, 2, 3} vs irrelevant {1, 2.5, 2}.
    # Each 3 beats all three (3 + 3); each 2 beats 1, loses to 2.5, ties 2 (1.5 + 1.5): 9 of 12.
    assert m["auc[outcome>=3]"] == pytest.approx(9 / 12)
    assert m["mse"] == pytest.approx((4 + 1 + 0 + 0.25 + 1 + 4 + 0) / 7)
    assert m["mae"] == pytest.approx((2 + 1 + 0 + 0.5 + 1 + 2 + 0) / 7)


def test_counts_are_not_read_as_ratings() -> None:
    m = dict(evaluate(RATINGS, scores([40.0, 12.0, 0.0, 30.0, 12.0, 40.0, 0.0])).rows())
    assert "mse" not in m and "mae" not in m
    assert not math.isnan(m["auc[outcome>=3]"])


def test_plot_is_a_png() -> None:
    s = scores([3.0, 2.0, 1.0, 2.5, 2.0, 2.0, 3.0])
    picture = evaluation_plot(RATINGS, s, evaluate(RATINGS, s))
    assert picture is not None and picture[:8] == b"\x89PNG\r\n\x1a\n"
    assert evaluation_plot(RATINGS.with_columns(pl.lit("train").alias("split")), s, evaluate(RATINGS, s)) is None
