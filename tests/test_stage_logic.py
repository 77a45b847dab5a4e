"""Each stage's logic on small data with a known answer (real pgmpy, scikit-learn, Dagster)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination
from pgmpy.utils import get_example_model

from causalrec_assets.candidates import top_k, unseen_pairs
from causalrec_assets.embeddings import item_texts, user_profiles
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.publish import build_publish_asset, publish_finished_run
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate
from causalrec_plugins.ranking.causal_rank import CausalRanking
from causalrec_plugins.structure.hill_climb import HillClimbStructure
from causalrec_resources.storage import CausalrecIOManager
from causalrec_toolkit.bayesnet import (
    adjustment_set,
    as_network,
    cpds_to_frame,
    fit_network,
    frame_to_network,
    interventional,
)
from causalrec_toolkit.evaluation import evaluate, ndcg_recall_at_k, uplift_curve_metrics
from causalrec_toolkit.topics import choose_topics, item_topics
from causalrec_toolkit.variables import MISSING, POPULARITY, VariableEncoder, binarise_threshold
from tests.conftest import published_files

SMALL_WORLD = dict(n_users=300, n_items=60, n_topics=4, pairs_per_user=20, test_pairs_per_user=10)


def ctx() -> PluginContext:
    return PluginContext()


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


# ------------------------------------------------------------------- bayesnet

PZ = [0.7, 0.3]
PX1_GIVEN_Z = {0: 0.2, 1: 0.8}
PY1_GIVEN_XZ = {(0, 0): 0.1, (1, 0): 0.3, (0, 1): 0.5, (1, 1): 0.6}


def confounded_network():
    """Z -> X, Z -> Y, X -> Y with the CPDs above; states "0"/"1"."""
    states = ["0", "1"]
    model = as_network(["Z", "X", "Y"], [("Z", "X"), ("Z", "Y"), ("X", "Y")])
    z = TabularCPD("Z", 2, [[PZ[0]], [PZ[1]]], state_names={"Z": states})
    x = TabularCPD(
        "X",
        2,
        [[1 - PX1_GIVEN_Z[0], 1 - PX1_GIVEN_Z[1]], [PX1_GIVEN_Z[0], PX1_GIVEN_Z[1]]],
        evidence=["Z"],
        evidence_card=[2],
        state_names={"X": states, "Z": states},
    )
    cols = [PY1_GIVEN_XZ[(xv, zv)] for xv in (0, 1) for zv in (0, 1)]  # evidence order X, Z
    y = TabularCPD(
        "Y",
        2,
        [[1 - c for c in cols], cols],
        evidence=["X", "Z"],
        evidence_card=[2, 2],
        state_names={"Y": states, "X": states, "Z": states},
    )
    model.add_cpds(z, x, y)
    assert model.check_model()
    return model


def test_interventional_equals_the_backdoor_formula() -> None:
    model = confounded_network()
    p = interventional(model, "X", "Y")
    assert set(p) == {"0", "1"}
    for xv in (0, 1):
        by_hand = sum(PZ[zv] * PY1_GIVEN_XZ[(xv, zv)] for zv in (0, 1))
        assert p[str(xv)] == pytest.approx(by_hand, abs=1e-12)
    backdoor = sum(PZ[zv] * (PY1_GIVEN_XZ[(1, zv)] - PY1_GIVEN_XZ[(0, zv)]) for zv in (0, 1))
    assert p["1"] - p["0"] == pytest.approx(backdoor, abs=1e-12)

    engine = VariableElimination(model)
    cond = {xv: engine.query(["Y"], evidence={"X": xv}, show_progress=False).get_value(Y="1") for xv in ("0", "1")}
    naive = cond["1"] - cond["0"]
    assert abs(naive - backdoor) > 0.1
    # The query leaves the model itself unmutilated.
    assert set(model.get_parents("X")) == {"Z"}


def test_interventional_with_evidence_is_the_stratum_effect() -> None:
    p = interventional(confounded_network(), "X", "Y", evidence={"Z": "1", "not_a_node": "x"})
    assert p["0"] == pytest.approx(PY1_GIVEN_XZ[(0, 1)])
    assert p["1"] == pytest.approx(PY1_GIVEN_XZ[(1, 1)])


def test_adjustment_set() -> None:
    edges = [
        ("Z", "X"),
        ("Z", "Y"),
        ("W", "Y"),  # outcome parent, not a descendant of X: kept
        ("X", "M"),
        ("M", "Y"),  # mediator: a descendant of X, left out
        ("X", "Y"),
        ("A", "X"),  # treatment-only parent: kept
        ("B", "Z"),  # ancestor of the confounder, not a parent: left out
    ]
    assert adjustment_set(edges, "X", "Y") == ["A", "W", "Z"]
    assert adjustment_set([("X", "Y")], "X", "Y") == []
    assert adjustment_set([("age", "exposure"), ("age", "outcome"), ("exposure", "outcome")]) == ["age"]


def discrete_data(n: int = 2000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = (rng.random(n) < 0.3 + 0.2 * a).astype(int)
    c = (rng.random(n) < 0.2 + 0.3 * b).astype(int)
    return pl.DataFrame(
        {
            "a": a.astype(str),
            "b": b.astype(str),
            "c": np.array(["lo", "hi"])[c],
            "d": np.array(["x", "y", "z"])[rng.integers(0, 3, n)],  # no parents, no children
        }
    )


def test_fit_network_and_cpd_frame_round_trip() -> None:
    data = discrete_data()
    edges = [("b", "c"), ("a", "c"), ("a", "b")]  # parent order of c not alphabetical
    model = fit_network(data, edges)
    assert model.check_model()
    frame = cpds_to_frame(model)
    assert frame.columns == ["variable", "state", "parents", "probability"]
    sums = frame.group_by("variable", "parents").agg(pl.col("probability").sum())["probability"]
    assert np.allclose(sums.to_numpy(), 1.0)
    assert (frame["probability"] > 0).all()  # the BDeu prior leaves no empty cell at zero

    rebuilt = frame_to_network(frame, edges)
    assert rebuilt.check_model()
    assert set(rebuilt.edges()) == set(model.edges())
    assert cpds_to_frame(rebuilt).equals(frame)
    for var in data.columns:
        original, copy = model.get_cpds(var), rebuilt.get_cpds(var)
        assert original == copy, var  # TabularCPD equality: same states and values, any parent order


def test_fitted_network_matches_the_frequencies() -> None:
    data = discrete_data(n=5000, seed=1)
    model = fit_network(data, [("a", "b")], equivalent_sample_size=1.0)
    p_b1_a2 = data.filter(pl.col("a") == "2").select((pl.col("b") == "1").mean()).item()  # empirical P(b=1 | a=2)
    fitted = VariableElimination(model).query(["b"], evidence={"a": "2"}, show_progress=False).get_value(b="1")
    assert fitted == pytest.approx(p_b1_a2, abs=0.01)


# ------------------------------------------------------------------ structure


@pytest.fixture(scope="module")
def asia() -> tuple[object, pl.DataFrame]:
    model = get_example_model("asia")  # pgmpy's bundled BIF file, no download
    samples = model.simulate(5000, seed=0, show_progress=False)
    return model, pl.from_pandas(samples.astype(str))


def skeleton(edges) -> set[frozenset[str]]:
    return {frozenset(map(str, e)) for e in edges}


def test_hill_climb_recovers_most_of_the_skeleton(asia) -> None:
    model, data = asia
    edges = HillClimbStructure(HillClimbStructure.Config(score="bic")).learn(data, Knowledge(), ctx())
    truth = skeleton(model.edges())
    learned = skeleton(edges)
    assert len(truth & learned) >= 6  # of 8; asia -> tub is too weak for 5,000 rows
    assert len(learned - truth) <= 3
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in edges)


def test_hill_climb_respects_tiers_and_exogenous_variables(asia) -> None:
    model, data = asia
    tiers = [["asia", "smoke"], ["tub", "lung", "bronc"], ["either"], ["xray", "dysp"]]
    knowledge = Knowledge(tiers=tiers, exogenous=["asia", "smoke"])
    edges = HillClimbStructure(HillClimbStructure.Config(score="bdeu")).learn(data, knowledge, ctx())
    rank = {v: i for i, tier in enumerate(tiers) for v in tier}
    assert edges
    for a, b in edges:
        assert b not in knowledge.exogenous, (a, b)
        assert rank[a] <= rank[b], (a, b)
    assert len(skeleton(model.edges()) & skeleton(edges)) >= 6


def test_hill_climb_required_and_forbidden_edges(asia) -> None:
    _, data = asia
    knowledge = Knowledge(required=[("asia", "xray")], forbidden=[("smoke", "lung"), ("lung", "smoke")])
    edges = HillClimbStructure().learn(data, knowledge, ctx())
    assert ("asia", "xray") in edges
    assert ("smoke", "lung") not in edges and ("lung", "smoke") not in edges


def test_knowledge_forbidden_edges() -> None:
    knowledge = Knowledge(tiers=[["a"], ["t"], ["y"]], exogenous=["a"], forbidden=[("a", "y")])
    forbidden = knowledge.forbidden_edges(["a", "t", "y", "free"])
    assert {("t", "a"), ("y", "a"), ("free", "a"), ("y", "t"), ("a", "y")} <= forbidden
    assert ("a", "t") not in forbidden and ("t", "y") not in forbidden
    assert ("free", "t") not in forbidden and ("t", "free") not in forbidden


# -------------------------------------------------------------------- effects

N_EFFECT = 20000
PZ1 = 0.4


@pytest.fixture(scope="module")
def confounded_world() -> tuple[pl.DataFrame, float]:
    """Binary Z confounds X and Y; P(y=1 | x, z) = 0.1 + 0.2x + 0.5z - 0.1xz, so the effect of
    X is 0.2 where z = 0 and 0.1 where z = 1 (ATE over the sample: 0.2 - 0.1 * mean(z))."""
    rng = np.random.default_rng(0)
    z = (rng.random(N_EFFECT) < PZ1).astype(int)
    x = (rng.random(N_EFFECT) < np.where(z == 1, 0.8, 0.2)).astype(int)
    y = (rng.random(N_EFFECT) < 0.1 + 0.2 * x + 0.5 * z - 0.1 * x * z).astype(int)
    data = pl.DataFrame({"Z": z.astype(str), "X": x.astype(str), "Y": y.astype(str)})
    return data, float(0.2 - 0.1 * z.mean())


EDGES_3 = [("Z", "X"), ("Z", "Y"), ("X", "Y")]


@pytest.fixture(scope="module")
def effects(confounded_world) -> pl.DataFrame:
    data, _ = confounded_world
    plugin = BackdoorEffects(BackdoorConfig(network_bootstrap=10))
    return plugin.estimate(EffectInputs(data, EDGES_3, "X", "Y"), ctx())


def estimate_of(effects: pl.DataFrame, estimator: str, estimand: str = "ATE") -> float:
    return effects.filter((pl.col("estimator") == estimator) & (pl.col("estimand") == estimand))["estimate"].item()


def test_backdoor_estimators_recover_the_true_ate(effects: pl.DataFrame, confounded_world) -> None:
    _, truth = confounded_world
    for estimator in ("dr_learner", "bn_do_query", "ips", "snips"):
        assert estimate_of(effects, estimator) == pytest.approx(truth, abs=0.03), estimator
    assert estimate_of(effects, "naive") - truth > 0.15


def test_backdoor_segment_effects(effects: pl.DataFrame) -> None:
    assert estimate_of(effects, "bn_do_query", "Z=0") == pytest.approx(0.2, abs=0.03)
    assert estimate_of(effects, "bn_do_query", "Z=1") == pytest.approx(0.1, abs=0.03)


def test_backdoor_rows_shape(effects: pl.DataFrame) -> None:
    assert effects.columns == EFFECT_COLUMNS
    first_ate = effects.filter(pl.col("estimand") == "ATE").row(0, named=True)
    assert first_ate["estimator"] == "dr_learner"
    assert effects.row(0, named=True) == first_ate
    assert set(effects["treatment"]) == {"X"} and set(effects["outcome"]) == {"Y"}
    assert set(effects["estimator"]) == {"dr_learner", "bn_do_query", "ips", "snips", "naive"}
    for row in effects.iter_rows(named=True):
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"], row
        assert row["ci_high"] - row["ci_low"] < 0.1, row


def test_backdoor_uses_a_given_network(confounded_world) -> None:
    data, _ = confounded_world
    network = fit_network(data, EDGES_3)
    plugin = BackdoorEffects(BackdoorConfig(network_bootstrap=0, estimators=["bn_do_query"]))
    out = plugin.estimate(EffectInputs(data, EDGES_3, "X", "Y", network=network), ctx())
    p = interventional(network, "X", "Y")
    assert estimate_of(out, "bn_do_query") == pytest.approx(p["1"] - p["0"])
    assert out["ci_low"].is_nan().all()  # no refits: no interval


def test_backdoor_single_valued_treatment_is_not_identifiable(confounded_world) -> None:
    data, _ = confounded_world
    constant = data.head(500).with_columns(pl.lit("1").alias("X"))
    out = BackdoorEffects().estimate(EffectInputs(constant, EDGES_3, "X", "Y"), ctx())
    assert out.height == 1
    row = out.row(0, named=True)
    assert row["estimator"] == "not_identifiable"
    assert row["estimand"] == "ATE"
    assert math.isnan(row["estimate"])
    assert out.columns == EFFECT_COLUMNS


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
