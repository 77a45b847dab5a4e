"""Bayesian networks, structure learning and back-door effects on small data with a known answer
(real pgmpy)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from pgmpy.factors.discrete import TabularCPD
from pgmpy.inference import VariableElimination
from pgmpy.utils import get_example_model
from plugin_helpers import ctx

from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_plugins.structure.hill_climb import HillClimbStructure
from causalrec_toolkit.bayesnet import (
    adjustment_set,
    as_network,
    cpds_to_frame,
    fit_network,
    frame_to_network,
    interventional,
)

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
