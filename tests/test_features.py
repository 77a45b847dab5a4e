"""The row-level features the estimators see: the data as it is, and nothing a pair's own
outcome (or exposure) could leak into."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from causal_worlds import scenario

from causalrec_assets.contracts import train_rows
from causalrec_toolkit.features import HAS_TASTE, HISTORY, PairFeaturizer, as_pair_features, feature_groups
from causalrec_toolkit.variables import AFFINITY, log_halves


@pytest.fixture(scope="module")
def world():
    return scenario("numeric", seed=1, n_users=120, n_items=40, pairs=20, test_pairs=4)


def test_numbers_stay_numbers_and_categories_become_codes() -> None:
    users = pl.DataFrame({"user_id": ["a", "b", "c"], "income": [10.5, None, 30.0], "tier": ["x", "y", None]})
    items = pl.DataFrame({"item_id": [1, 2], "colour": ["red", "blue"]})
    log = pl.DataFrame({"user_id": ["a", "b", "c"], "item_id": [1, 2, 1], "exposure": [1, 0, 1], "outcome": [1, 0, 0]})
    featurizer = PairFeaturizer().fit(users, items, log)
    frame = featurizer.transform(pl.DataFrame({"user_id": ["a", "b", "c", "z"], "item_id": [1, 2, 2, 1]}))
    assert frame["income"].to_list() == [10.5, 20.25, 30.0, 20.25]  # missing: the median, and flagged
    assert frame["income:missing"].to_list() == [0.0, 1.0, 0.0, 1.0]  # user z is in no table
    assert frame.schema["tier"] == pl.Int32 and frame["tier"].to_list() == [0, 1, 2, 2]  # null / unknown: 2
    assert frame["colour"].to_list() == [1, 0, 0, 1]  # blue = 0, red = 1
    features = as_pair_features(frame.with_columns(exposure=pl.lit(1.0), outcome=pl.lit(0.0)), 0.5)
    assert set(features.categorical) == {"tier", "colour"}
    assert features.columns_for(["income"]) == ["income", "income:missing"]


def test_a_pairs_own_outcome_and_exposure_never_change_its_features(world) -> None:
    """The taste and the history rates of a logged pair come from the other half of its
    user's log: flipping the pair's own outcome and exposure leaves its features unchanged
    (but for the population-wide rates the history shrinks toward, a 1/n effect), while it
    changes those of the other half's pairs."""
    users, items, log = world.world.users, world.world.items, train_rows(world.world.interactions)
    fitted = PairFeaturizer().fit(users, items, log, world.embeddings, world.topics)
    user = log["user_id"][0]
    mine = log.filter(pl.col("user_id") == user)
    halves = log_halves(mine)
    row = mine.row(0, named=True)
    flipped = log.with_columns(
        pl.when((pl.col("user_id") == user) & (pl.col("item_id") == row["item_id"]))
        .then(1 - pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in ("exposure", "outcome")
    )
    refitted = PairFeaturizer().fit(users, items, flipped, world.embeddings, world.topics)
    own = mine.head(1)
    np.testing.assert_allclose(fitted.transform(own).to_numpy(), refitted.transform(own).to_numpy(), atol=1e-3)
    half = halves.filter(pl.col("item_id") == row["item_id"])["_h"][0]
    others = halves.filter(pl.col("_h") != half).select("user_id", "item_id")
    gap = np.abs(fitted.transform(others).to_numpy() - refitted.transform(others).to_numpy()).max(axis=1)
    assert gap.max() > 0.01
    assert not (fitted.transform(own)[list(HISTORY)].to_numpy() == 0).all()


def test_pairs_outside_the_log_read_the_whole_history(world) -> None:
    users, items, log = world.world.users, world.world.items, train_rows(world.world.interactions)
    featurizer = PairFeaturizer().fit(users, items, log, world.embeddings, world.topics)
    user = log["user_id"][0]
    unseen = items.join(log.filter(pl.col("user_id") == user).select("item_id"), on="item_id", how="anti")
    pairs = unseen.select(pl.lit(user).alias("user_id"), "item_id")
    mine = log.filter(pl.col("user_id") == user)
    exposure_rate = (mine["exposure"].sum() + 2 * log["exposure"].mean()) / (mine.height + 2)
    assert featurizer.transform(pairs)["history_exposure"].to_list() == pytest.approx([exposure_rate] * pairs.height)
    assert featurizer.transform(pairs)[HAS_TASTE].min() == 1.0


def test_each_variable_of_the_graph_maps_to_the_columns_that_carry_it(world) -> None:
    users, items, log = world.world.users, world.world.items, train_rows(world.world.interactions)
    featurizer = PairFeaturizer(n_components=3).fit(users, items, log, world.embeddings, world.topics)
    groups = featurizer.groups
    assert groups["income"] == ["income"] and groups["price"] == ["price"]
    assert groups["item_topic"] == ["item_topic", "item_text_0", "item_text_1", "item_text_2"]
    assert set(groups[AFFINITY]) == {AFFINITY, HAS_TASTE, *HISTORY, "user_taste_0", "user_taste_1", "user_taste_2"}
    assert groups == feature_groups(featurizer.feature_names)
    frame = featurizer.transform(log)
    assert frame.select(pl.all().is_finite().all()).row(0) == tuple([True] * frame.width)
    assert np.isfinite(frame.to_numpy()).all()


def test_features_by_user_shard_are_the_whole_logs_in_its_order() -> None:
    """Each shard is sent the featurizer's state of its own users only; together the shards
    give every logged pair (training and test) the features of one call, in the log's order."""
    from causalrec_resources.compute import ComputeResource
    from causalrec_toolkit.encoding import pair_features, stored

    taste = scenario("taste", seed=2, n_users=150, n_items=60, pairs=20, test_pairs=5)
    logged, featurizer = taste.world.interactions, taste.featurizer
    whole = pl.concat(
        [logged.select("user_id", "item_id", "split"), stored(featurizer.transform(logged))], how="horizontal"
    )
    for shards in (1, 5):
        assert pair_features(featurizer, logged, ComputeResource(engine="local", shards=shards)).equals(whole), shards


def test_a_stored_encoding_from_another_toolkit_version_is_refused_with_both_versions_named() -> None:
    from dataclasses import replace

    from causalrec_toolkit import __version__
    from causalrec_toolkit.encoding import EncodingVersionError, VariableEncoding, check_encoding

    empty = pl.DataFrame()
    current = VariableEncoding(None, None, empty, empty, empty)  # type: ignore[arg-type]
    assert check_encoding(current) is current and current.toolkit_version == __version__
    with pytest.raises(EncodingVersionError, match=rf"0\.1\.0, this is {__version__}.*structure stage"):
        check_encoding(replace(current, toolkit_version="0.1.0"))
    unstamped = replace(current)
    del unstamped.__dict__["toolkit_version"]  # a pickle from before the stamp
    with pytest.raises(EncodingVersionError, match="before 0.2.0"):
        check_encoding(unstamped)
