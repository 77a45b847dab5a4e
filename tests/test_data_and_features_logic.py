"""The simulator, the variable encoder, item topics and the embedding helpers, on small data with a
known answer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate
from causalrec_toolkit.embeddings import item_texts, user_profiles
from causalrec_toolkit.topics import choose_topics, item_topics
from causalrec_toolkit.variables import MISSING, POPULARITY, VariableEncoder, binarise_threshold

SMALL_WORLD = dict(n_users=300, n_items=60, n_topics=4, pairs_per_user=20, test_pairs_per_user=10)


# ------------------------------------------------------------------ simulator


@pytest.fixture(scope="module")
def world():
    return simulate(SimulatorConfig(seed=3, **SMALL_WORLD))


def test_simulator_is_deterministic_for_a_seed(world) -> None:
    again = simulate(SimulatorConfig(seed=3, **SMALL_WORLD))
    assert again.users.equals(world.users)
    assert again.items.equals(world.items)
    assert again.interactions.equals(world.interactions)
    assert again.truth.uplift.equals(world.truth.uplift)
    assert again.truth.ate == world.truth.ate


def test_simulator_differs_for_another_seed(world) -> None:
    other = simulate(SimulatorConfig(seed=4, **SMALL_WORLD))
    assert not other.interactions.equals(world.interactions)
    assert not other.items.equals(world.items)
    assert other.truth.ate != world.truth.ate


def test_simulator_shape_and_test_split_is_randomized(world) -> None:
    inter = world.interactions
    assert inter.height == 300 * 30
    counts = inter.group_by("split").len().sort("split")
    assert counts.rows() == [("test", 300 * 10), ("train", 300 * 20)]
    assert inter.select("user_id", "item_id").is_unique().all()
    test = inter.filter(pl.col("split") == "test")
    assert abs(test["exposure"].mean() - 0.5) < 0.04


def test_simulator_truth_ate_is_mean_uplift_over_training_pairs(world) -> None:
    train = world.interactions.filter(pl.col("split") == "train").select("user_id", "item_id")
    uplift = train.join(world.truth.uplift, on=["user_id", "item_id"], how="left")["uplift"]
    assert uplift.null_count() == 0
    assert world.truth.ate == pytest.approx(uplift.mean(), abs=1e-12)
    assert world.truth.uplift.height == 300 * 60
    assert world.truth.as_json()["ate"] == world.truth.ate
    assert ("exposure", "outcome") in world.truth.edges


def test_simulator_naive_difference_is_biased(world) -> None:
    train = world.interactions.filter(pl.col("split") == "train")
    naive = (
        train.filter(pl.col("exposure") == 1)["outcome"].mean()
        - train.filter(pl.col("exposure") == 0)["outcome"].mean()
    )
    assert naive - world.truth.ate > 0.05


def test_simulator_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="n_topics"):
        simulate(SimulatorConfig(n_topics=9, **{k: v for k, v in SMALL_WORLD.items() if k != "n_topics"}))
    with pytest.raises(ValueError, match="exceeds n_items"):
        simulate(SimulatorConfig(n_users=5, n_items=10, pairs_per_user=8, test_pairs_per_user=5))


# ------------------------------------------------------------ VariableEncoder


def encoder_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    users = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(20)],
            "age": list(range(20, 40)),  # numeric, 20 levels: quantile-binned
            "country": ["x"] * 20,  # a single value: skipped
            "segment": [["a", "b", None][i % 3] for i in range(20)],  # nulls: "missing"
            "color": [["red", "blue"][i % 2] for i in range(20)],  # clashes with items.color
            "nick": [f"n{i}" for i in range(20)],  # 20 string levels: skipped
        }
    )
    items = pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(6)],
            "text": ["some text"] * 6,
            "color": ["red", "green", "red", "green", "blue", "blue"],
            "price": [1.0, 2.0, 3.0, None, 5.0, 6.0],
        }
    )
    train = pl.DataFrame(
        {
            "user_id": [f"u{i % 20}" for i in range(60)],
            "item_id": [f"i{i % 5}" for i in range(60)],  # i5 never appears in training
            "exposure": [i % 2 for i in range(60)],
            "outcome": [(i * 7) % 5 + 1 for i in range(60)],  # ratings 1..5
        }
    )
    return users, items, train


@pytest.fixture(scope="module")
def fitted_encoder() -> VariableEncoder:
    users, items, train = encoder_tables()
    return VariableEncoder(n_bins=4, max_levels=12).fit(users, items, train)


def test_encoder_bins_numeric_high_cardinality(fitted_encoder: VariableEncoder) -> None:
    coding = next(c for c in fitted_encoder.codings if c.name == "age")
    assert coding.edges == pytest.approx([24.75, 29.5, 34.25])
    users, _, _ = encoder_tables()
    codes = coding.encode(users["age"])
    assert codes.to_list() == ["q0"] * 5 + ["q1"] * 5 + ["q2"] * 5 + ["q3"] * 5


def test_encoder_skips_and_reports(fitted_encoder: VariableEncoder) -> None:
    assert set(fitted_encoder.skipped) == {"country", "nick"}
    assert fitted_encoder.skipped["country"] == "a single value"
    assert "20 levels" in fitted_encoder.skipped["nick"]
    assert "country" not in fitted_encoder.variable_names
    assert "nick" not in fitted_encoder.variable_names


def test_encoder_prefixes_clashing_attribute_names(fitted_encoder: VariableEncoder) -> None:
    names = fitted_encoder.variable_names
    assert "user_color" in names and "item_color" in names and "color" not in names
    assert names == ["age", "segment", "user_color", "item_color", "price", POPULARITY]
    pairs = pl.DataFrame({"user_id": ["u0", "u1"], "item_id": ["i1", "i4"]})
    features = fitted_encoder.pair_features(pairs)
    assert features["user_color"].to_list() == ["red", "blue"]
    assert features["item_color"].to_list() == ["green", "blue"]


def test_encoder_nulls_become_missing(fitted_encoder: VariableEncoder) -> None:
    pairs = pl.DataFrame({"user_id": ["u0", "u1", "u2", "u3"], "item_id": ["i0", "i1", "i2", "i3"]})
    features = fitted_encoder.pair_features(pairs)
    assert features["segment"].to_list() == ["a", "b", MISSING, "a"]
    assert features["price"].to_list() == ["1.0", "2.0", "3.0", MISSING]
    assert features.null_count().sum_horizontal().item() == 0


def test_encoder_transform_codes_new_pairs_like_training_pairs(fitted_encoder: VariableEncoder) -> None:
    users, items, train = encoder_tables()
    on_train = fitted_encoder.transform(train)
    assert on_train.columns == fitted_encoder.variable_names + ["exposure", "outcome"]
    assert on_train.height == train.height
    assert set(on_train["outcome"].unique()) <= {"0", "1"}
    assert on_train["outcome"].to_list() == [str(int(r >= 4)) for r in train["outcome"].to_list()]

    every = (
        users.select("user_id").join(items.select("item_id"), how="cross").sample(fraction=1.0, shuffle=True, seed=1)
    )
    candidates = pl.concat([every.with_row_index("row"), train.select("user_id", "item_id").with_row_index("row")])
    features = pl.concat([candidates, fitted_encoder.pair_features(candidates)], how="horizontal")
    train_features = pl.concat(
        [train.select("user_id", "item_id"), on_train.drop("exposure", "outcome")], how="horizontal"
    )
    joined = train_features.join(
        features.drop("row").unique(["user_id", "item_id"]), on=["user_id", "item_id"], suffix="_new"
    )
    assert joined.height == train.height
    for name in fitted_encoder.variable_names:
        assert joined[name].equals(joined[f"{name}_new"].alias(name)), name
    # An item absent from training has popularity 0, the lowest bin.
    unseen = fitted_encoder.pair_features(pl.DataFrame({"user_id": ["u0"], "item_id": ["i5"]}))
    assert unseen[POPULARITY].to_list() == ["q0"]


def test_stage_knowledge_puts_the_encoded_variables_first(fitted_encoder: VariableEncoder) -> None:
    from causalrec_assets.stages.structure.assets import stage_knowledge

    _, _, train = encoder_tables()
    knowledge = stage_knowledge(fitted_encoder.transform(train))
    assert knowledge.tiers[1:] == [["exposure"], ["outcome"]]
    assert set(knowledge.tiers[0]) == set(fitted_encoder.variable_names)
    assert knowledge.exogenous == knowledge.tiers[0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 1, 0], 0.5),
        ([1, 1, 1], 0.5),
        ([0.0, 1.0, None], 0.5),
        ([1, 2, 3, 4, 5], 4.0),
        ([1.5, 3.0, 5.0], 4.0),
        ([], 0.5),
    ],
)
def test_binarise_threshold(values: list, expected: float) -> None:
    assert binarise_threshold(pl.Series("outcome", values, dtype=pl.Float64)) == expected


def test_binarise_threshold_other_scales_use_the_median() -> None:
    threshold = binarise_threshold(pl.Series("outcome", [0.0, 10.0, 20.0, 30.0, 100.0]))
    assert threshold == pytest.approx(20.0)
    assert threshold > 20.0


# --------------------------------------------------------------------- topics


def blobs(sizes: list[int], dim: int = 16, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    points = centres[labels] + noise * rng.standard_normal((labels.size, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_choose_topics_recovers_clusters_by_silhouette() -> None:
    points, truth = blobs([20, 20, 20, 20])
    labels, scores = choose_topics(points, k_range=(2, 7))
    assert max(scores, key=scores.get) == 4
    assert set(scores) == set(range(2, 8))
    assert same_partition(labels, truth)


def test_choose_topics_given_k_and_tiny_input() -> None:
    points, truth = blobs([10, 10, 10])
    labels, scores = choose_topics(points, k=3)
    assert scores == {}
    assert same_partition(labels, truth)
    tiny, _ = choose_topics(points[:2])
    assert tiny.tolist() == [0, 0]


def test_item_topics_labels_ordered_by_size() -> None:
    points, truth = blobs([30, 20, 12, 6], seed=1)
    frame = pl.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(truth.size)],
            "embedding": pl.Series("embedding", points, dtype=pl.Array(pl.Float32, points.shape[1])),
        }
    )
    topics = item_topics(frame, k=4)
    assert topics["item_id"].to_list() == frame["item_id"].to_list()
    by_truth = {int(t): lab for t, lab in zip(truth.tolist(), topics["item_topic"].to_list(), strict=True)}
    assert by_truth == {0: "t0", 1: "t1", 2: "t2", 3: "t3"}
    assert topics["item_topic"].value_counts(sort=True)["count"].to_list() == [30, 20, 12, 6]


# ----------------------------------------------------------------- embeddings


def test_item_texts_fallbacks() -> None:
    items = pl.DataFrame(
        {
            "item_id": [1, 2, 3, 4],
            "text": ["A red coat", None, "   ", ""],
            "color": ["red", "blue", None, None],
            "size": ["M", "L", "S", None],
        }
    )
    assert item_texts(items) == ["A red coat", "color: blue; size: L", "size: S", "item 4"]
    no_text = pl.DataFrame({"item_id": ["a", "b"], "color": ["red", "blue"]})
    assert item_texts(no_text) == ["color: red", "color: blue"]
    bare = pl.DataFrame({"item_id": ["a"]})
    assert item_texts(bare) == ["item a"]


def embedding_table(vectors: dict[str, list[float]]) -> pl.DataFrame:
    matrix = np.asarray(list(vectors.values()), dtype=np.float32)
    return pl.DataFrame(
        {
            "item_id": list(vectors),
            "embedding": pl.Series("embedding", matrix, dtype=pl.Array(pl.Float32, matrix.shape[1])),
        }
    )


def test_user_profiles_use_positive_items_and_are_unit_vectors() -> None:
    embeddings = embedding_table(
        {"A": [3.0, 0.0, 0.0], "B": [0.0, 2.0, 0.0], "C": [0.0, 0.0, 1.0], "D": [1.0, 1.0, 0.0]}
    )
    train = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2", "u3", "u3"],
            "item_id": ["A", "B", "D", "B", "C", "C", "D"],
            "exposure": [1, 1, 0, 1, 0, 0, 0],
            "outcome": [1, 0, 1, 0, 0, 0, 0],
        }
    )
    profiles, engaged = user_profiles(train, embeddings)
    assert engaged == 1
    got = {u: np.asarray(v) for u, v in zip(profiles["user_id"], profiles["embedding"].to_list(), strict=True)}
    assert set(got) == {"u1", "u2", "u3"}
    for vector in got.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    # u1: positive on A (exposed) and D (unexposed), not B; u2: only what it was shown (B);
    # u3: nothing positive or shown, so everything logged (C and D).
    expected = {"u1": [3.0 + 1.0, 1.0, 0.0], "u2": [0.0, 1.0, 0.0], "u3": [1.0, 1.0, 1.0]}
    for user, vector in expected.items():
        unit = np.asarray(vector) / np.linalg.norm(vector)
        assert np.allclose(got[user], unit, atol=1e-6), user
    assert profiles.schema["embedding"] == pl.Array(pl.Float32, 3)


def test_user_profiles_ratings_count_four_and_above_as_positive() -> None:
    embeddings = embedding_table({"A": [1.0, 0.0], "B": [0.0, 1.0]})
    train = pl.DataFrame({"user_id": [7, 7], "item_id": ["A", "B"], "exposure": [1, 1], "outcome": [5, 3]})
    profiles, engaged = user_profiles(train, embeddings)
    assert engaged == 1
    assert profiles["user_id"].to_list() == [7]
    assert np.allclose(profiles["embedding"].to_list()[0], [1.0, 0.0])
