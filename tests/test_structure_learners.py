"""The structure learners: scores and tests against pgmpy/scipy, recovery of known networks,
expert knowledge, awkward variables, determinism (real pgmpy throughout)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pgmpy.models import DiscreteBayesianNetwork
from pgmpy.structure_score import AIC, BIC, K2, BDeu
from pgmpy.utils import get_example_model
from scipy.stats import chi2_contingency

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.registry import get_registry
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_plugins.structure.citests import CodedCITest
from causalrec_plugins.structure.hill_climb import HillClimbStructure
from causalrec_plugins.structure.knowledge import KnowledgeError
from causalrec_plugins.structure.metrics import compare, cpdag_marks, marks_distance
from causalrec_plugins.structure.orient import to_dag
from causalrec_plugins.structure.scores import CountingScore
from causalrec_plugins.structure.table import MISSING, OTHER, coded_table

LEARNERS = ["hill_climb", "pc", "mmhc", "ges"]


def plugin(name: str, **config):
    cls = get_registry().get("structure", name)
    return cls(cls.Config(**config))


def sample(model: DiscreteBayesianNetwork, rows: int, seed: int) -> pl.DataFrame:
    return pl.from_pandas(model.simulate(rows, seed=seed, show_progress=False).astype(str))


SMALL_EDGES = [("A", "C"), ("B", "C"), ("C", "D"), ("E", "D"), ("D", "G"), ("E", "F")]


def small_world(rows: int, seed: int) -> pl.DataFrame:
    """Two colliders (A -> C <- B, C -> D <- E), a chain on (D -> G, compelled by Meek's first
    rule) and a reversible edge E - F; every dependence strong."""
    rng = np.random.default_rng(seed)

    def noisy(values: np.ndarray, states: int, keep: float) -> np.ndarray:
        return np.where(rng.random(rows) < keep, values, rng.integers(0, states, rows))

    a, b, e = rng.integers(0, 2, rows), rng.integers(0, 3, rows), rng.integers(0, 2, rows)
    c = noisy(a + b, 4, 0.8)
    d = (rng.random(rows) < 0.1 + 0.35 * (c > 0) + 0.45 * e).astype(int)
    g, f = noisy(d, 2, 0.8), noisy(e, 3, 0.75)
    columns = {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g}
    return pl.DataFrame({k: [f"s{v}" for v in vals] for k, vals in columns.items()})


@pytest.fixture(scope="module")
def small() -> tuple[list[tuple[str, str]], pl.DataFrame]:
    return SMALL_EDGES, small_world(8000, seed=1)


@pytest.fixture(scope="module")
def asia() -> tuple[DiscreteBayesianNetwork, pl.DataFrame]:
    model = get_example_model("asia")
    return model, sample(model, 5000, seed=0)


# ------------------------------------------------------------------ scores and tests


def test_counting_scores_equal_pgmpys(asia) -> None:
    _, data = asia
    table = coded_table(data)
    frame = table.to_pandas()
    rng = np.random.default_rng(0)
    for kind, reference in (("bic", BIC), ("aic", AIC), ("bdeu", BDeu), ("k2", K2)):
        ours, theirs = CountingScore(table, kind), reference(frame)
        for _ in range(12):
            child = str(rng.choice(table.names))
            others = [n for n in table.names if n != child]
            parents = tuple(str(p) for p in rng.choice(others, size=rng.integers(0, 4), replace=False))
            assert ours.local_score(child, parents) == pytest.approx(theirs.local_score(child, parents), rel=1e-9)
        assert ours.local_score("dysp", ("bronc", "either")) == ours.local_score("dysp", ("either", "bronc"))


def test_ci_tests_equal_scipy_and_sum_over_strata() -> None:
    rng = np.random.default_rng(3)
    z = rng.integers(0, 3, 4000)
    x = (rng.random(4000) < 0.3 + 0.2 * (z == 1)).astype(int)
    y = (rng.random(4000) < 0.2 + 0.3 * x * (z > 0)).astype(int) + (z == 2)
    table = coded_table(pl.DataFrame({"x": x, "y": y, "z": z}))
    for statistic, lambda_ in (("chi_square", "pearson"), ("g_test", "log-likelihood")):
        test = CodedCITest(table, statistic)
        test("x", "y", [], significance_level=0.01)
        reference = chi2_contingency(pd.crosstab(x, y).to_numpy(), correction=False, lambda_=lambda_)
        assert test.statistic_ == pytest.approx(reference.statistic, rel=1e-9)
        assert test.p_value_ == pytest.approx(reference.pvalue, rel=1e-6)
        test("x", "y", ["z"], significance_level=0.01)
        parts = [chi2_contingency(pd.crosstab(x[z == k], y[z == k]).to_numpy(), correction=False, lambda_=lambda_)
                 for k in range(3)]  # fmt: skip
        assert test.statistic_ == pytest.approx(sum(p.statistic for p in parts), rel=1e-9)
        assert test.dof_ == sum(p.dof for p in parts)


def test_ci_test_without_degrees_of_freedom_says_dependent() -> None:
    """A deterministic child (asia's ``either``) must not be separated from its effects."""
    x = np.array([0, 1] * 500)
    table = coded_table(pl.DataFrame({"x": x, "copy": x, "y": np.arange(1000) % 3}))
    test = CodedCITest(table, "chi_square")
    assert not test("copy", "y", ["x"], significance_level=0.01)
    assert test.dof_ == 0


# ------------------------------------------------------------------ recovery


# MMHC climbs from the empty graph, so the first edge of a collider can be added the wrong
# way round (same score) and stay so: one collider's two marks.
@pytest.mark.parametrize(("name", "tolerance"), [("hill_climb", 0), ("pc", 0), ("ges", 0), ("mmhc", 2)])
def test_each_learner_recovers_a_small_network_up_to_its_class(small, name: str, tolerance: int) -> None:
    truth, data = small
    edges = plugin(name, bootstrap=0).learn(data, Knowledge(), PluginContext())
    figures = compare(list(data.columns), truth, edges)
    assert figures["cpdag_shd"] <= tolerance, (name, sorted(edges))
    assert figures["skeleton_f1"] == 1.0, (name, sorted(edges))


def test_default_learner_on_asia_beats_greedy_search_from_empty(asia) -> None:
    model, data = asia
    names = list(data.columns)
    default = compare(names, model.edges(), HillClimbStructure().learn(data, Knowledge(), PluginContext()))
    from_empty = HillClimbStructure(HillClimbStructure.Config(start="empty"))
    greedy = compare(names, model.edges(), from_empty.learn(data, Knowledge(), PluginContext()))
    assert default["cpdag_shd"] <= 1  # asia -> tub is too weak for 5,000 rows
    assert default["skeleton_f1"] >= 0.9
    assert default["cpdag_shd"] <= greedy["cpdag_shd"]


# ------------------------------------------------------------------ knowledge


@pytest.mark.parametrize("name", LEARNERS)
def test_every_learner_respects_tiers_required_and_forbidden_edges(asia, name: str) -> None:
    _, data = asia
    tiers = [["asia", "smoke"], ["tub", "lung", "bronc"], ["either"], ["xray", "dysp"]]
    config = plugin(name, tiers=tiers, required_edges=[["asia", "xray"]], forbidden_edges=[["smoke", "lung"]])
    stage = Knowledge(exogenous=["asia", "smoke"])
    edges = config.learn(data, stage, PluginContext())
    rank = {v: i for i, tier in enumerate(tiers) for v in tier}
    assert ("asia", "xray") in edges
    assert ("smoke", "lung") not in edges
    for a, b in edges:
        assert b not in ("asia", "smoke"), (a, b)
        assert rank[a] <= rank[b], (a, b)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"required_edges": [["a", "b"], ["b", "c"], ["c", "a"]]}, "required edges make a cycle: a -> b -> c -> a"),
        ({"required_edges": [["a", "b"]], "forbidden_edges": [["a", "b"]]}, "both required and forbidden: a -> b"),
        ({"tiers": [["a"], ["a", "b"]]}, "'a' is in tier 0 and tier 1"),
        ({"tiers": [["a"], ["b"]], "required_edges": [["b", "a"]]}, "points from tier 1 back to tier 0"),
        ({"required_edges": [["a", "a"]]}, "self-loop"),
        ({"forbidden_edges": [["a", "b", "c"]]}, "[cause, effect] pair"),
    ],
)
def test_bad_knowledge_fails_when_the_config_is_read(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HillClimbStructure.Config(**config)


def test_knowledge_on_unknown_or_clashing_variables_fails_before_any_work(asia) -> None:
    _, data = asia
    one_row = data.head(1)  # coding it would fail ("at least 2 rows"): the knowledge is checked first
    learner = plugin("hill_climb", tiers=[["asia", "age"], ["smoke"]])
    with pytest.raises(KnowledgeError, match=r"unknown variable\(s\): 'age' \(tier 0\)"):
        learner.learn(one_row, Knowledge(), PluginContext())
    learner = plugin("pc", required_edges=[["xray", "asia"]])
    with pytest.raises(KnowledgeError, match="ruled out by the tiers or exogenous variables"):
        learner.learn(one_row, Knowledge(exogenous=["asia"]), PluginContext())
    learner = plugin("pc", required_edges=[["xray", "asia"]])
    with pytest.raises(KnowledgeError, match="required edges make a cycle"):
        learner.learn(one_row, Knowledge(required=[("asia", "xray")]), PluginContext())


# ------------------------------------------------------------------ awkward variables


def test_single_valued_many_levelled_and_missing_variables_are_reported_not_fatal(asia) -> None:
    _, data = asia
    rng = np.random.default_rng(0)
    awkward = data.with_columns(
        pl.lit("same").alias("constant"),
        pl.Series("ids", [f"id{k}" for k in rng.integers(0, 400, data.height)]),
        pl.when(pl.col("smoke") == "yes").then(None).otherwise(pl.col("bronc")).alias("gappy"),
    )
    for name in ("hill_climb", "pc", "mmhc"):
        learner = plugin(name, max_levels=20)
        edges = learner.learn(awkward, Knowledge(), PluginContext())
        assert not [e for e in edges if "constant" in e], name
        report = learner.report_
        assert "single value" in report["constant"]
        assert "levels: kept the 19 most frequent" in report["ids"] and OTHER in report["ids"]
        assert "missing value(s)" in report["gappy"] and MISSING in report["gappy"]
    table = coded_table(awkward, max_levels=20)
    assert len(table.states[table.index("ids")]) == 20
    assert table.constant() == ["constant"]


# ------------------------------------------------------------------ helpers


def test_to_dag_keeps_the_class_and_obeys_the_knowledge() -> None:
    names = ["a", "b", "c", "d"]
    directed, undirected = [("a", "c"), ("b", "c")], [("c", "d")]
    dag = to_dag(names, directed, undirected)
    assert set(dag) == {("a", "c"), ("b", "c"), ("c", "d")}  # Meek: c - d must leave the collider
    dag = to_dag(names, [("c", "a")], [("a", "b")], Knowledge(forbidden=[("c", "a")], required=[("d", "a")]))
    assert ("a", "c") in dag and ("c", "a") not in dag and ("d", "a") in dag


def test_cpdag_distance_ignores_reversible_edges() -> None:
    names = ["x", "y", "z"]
    chain, reversed_chain, collider = [("x", "y"), ("y", "z")], [("z", "y"), ("y", "x")], [("x", "y"), ("z", "y")]
    assert marks_distance(cpdag_marks(names, chain), cpdag_marks(names, reversed_chain)) == 0
    assert marks_distance(cpdag_marks(names, chain), cpdag_marks(names, collider)) == 2
    assert compare(names, chain, reversed_chain)["directed_f1"] == 0.0
