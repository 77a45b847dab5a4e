"""Each effect estimator plugin on small worlds with a known answer."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from causalrec_assets.estimators import ESTIMATORS, bootstrap_interval, point_estimate, propensity_scores
from causalrec_assets.plugin_api import EFFECT_COLUMNS, EffectInputs, PluginContext
from causalrec_plugins.effects.backdoor import BackdoorEffects
from causalrec_plugins.effects.single import (
    DoublyRobustEffects,
    IPSEffects,
    NaiveEffects,
    NetworkEffects,
    SNIPSEffects,
)

PLUGINS = {  # entry-point name -> class (as pyproject.toml registers them)
    "doubly_robust": DoublyRobustEffects,
    "ips": IPSEffects,
    "snips": SNIPSEffects,
    "naive": NaiveEffects,
    "bn_do_query": NetworkEffects,
    "backdoor": BackdoorEffects,
}

EDGES = [("Z", "X"), ("Z", "Y"), ("W", "Y"), ("X", "Y")]


def confounded(n: int, seed: int, effect_z0: float = 0.2, effect_z1: float = 0.1) -> tuple[pl.DataFrame, float]:
    """Z (3 levels) drives exposure X and outcome Y; W drives Y only. The effect of X is
    ``effect_z0`` where Z = 0 and ``effect_z1`` elsewhere; returns the sample's true ATE."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 3, n)
    w = rng.integers(0, 2, n)
    x = (rng.random(n) < np.array([0.15, 0.5, 0.85])[z]).astype(int)
    tau = np.where(z == 0, effect_z0, effect_z1)
    y = (rng.random(n) < 0.1 + 0.2 * z + 0.1 * w + tau * x).astype(int)
    frame = pl.DataFrame({"Z": z.astype(str), "W": w.astype(str), "X": x.astype(str), "Y": y.astype(str)})
    return frame, float(tau.mean())


@pytest.fixture(scope="module")
def world() -> tuple[pl.DataFrame, float]:
    return confounded(20000, seed=1)


def run(plugin_name: str, data: pl.DataFrame, **config) -> pl.DataFrame:
    cls = PLUGINS[plugin_name]
    return cls(cls.Config(**config)).estimate(EffectInputs(data, EDGES, "X", "Y"), PluginContext())


@pytest.mark.parametrize("name", ["doubly_robust", "ips", "snips"])
def test_adjusted_estimators_recover_the_ate(world, name: str) -> None:
    data, truth = world
    out = run(name, data, n_bootstrap=100)
    assert out.columns == EFFECT_COLUMNS and out.height == 1
    row = out.row(0, named=True)
    assert (row["estimand"], row["estimator"]) == ("ATE", name)
    assert row["estimate"] == pytest.approx(truth, abs=0.02)
    assert row["ci_low"] <= truth <= row["ci_high"], row
    assert row["ci_high"] - row["ci_low"] < 0.06


def test_naive_estimator_is_confounded(world) -> None:
    data, truth = world
    row = run("naive", data, n_bootstrap=50).row(0, named=True)
    assert row["estimate"] - truth > 0.15  # Z raises both exposure and outcome


def test_network_do_query_gives_the_ate_and_segment_effects(world) -> None:
    data, truth = world
    out = run("bn_do_query", data, network_bootstrap=5)
    effects = {r["estimand"]: r for r in out.iter_rows(named=True)}
    assert effects["ATE"]["estimate"] == pytest.approx(truth, abs=0.02)
    assert effects["Z=0"]["estimate"] == pytest.approx(0.2, abs=0.04)
    assert effects["Z=2"]["estimate"] == pytest.approx(0.1, abs=0.04)
    for level in ("W=0", "W=1"):  # W drives the outcome but does not modify the effect
        assert effects[level]["estimate"] == pytest.approx(truth, abs=0.04)
    assert out.row(0, named=True)["estimand"] == "ATE"


def test_doubly_robust_survives_a_wrong_outcome_model() -> None:
    """With the outcome depending on Z only through an interaction the main-effects outcome
    model cannot express, the propensity model still makes the DR estimate right."""
    rng = np.random.default_rng(4)
    n = 30000
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x = (rng.random(n) < np.where(a == b, 0.8, 0.2)).astype(int)
    y = (rng.random(n) < 0.15 + 0.5 * (a == b) + 0.1 * x).astype(int)
    data = pl.DataFrame({"A": a.astype(str), "B": b.astype(str), "X": x.astype(str), "Y": y.astype(str)})
    cell = data.with_columns(pl.concat_str(["A", "B"]).alias("AB")).select("AB", "X", "Y")
    dr = point_estimate("doubly_robust", cell, ["AB"], "X", "Y")
    assert dr == pytest.approx(0.1, abs=0.025)
    assert point_estimate("naive", cell, [], "X", "Y") > 0.3


def test_not_identifiable_when_exposure_is_constant(world) -> None:
    data, _ = world
    constant = data.head(300).with_columns(pl.lit("1").alias("X"))
    for name in ("doubly_robust", "naive", "bn_do_query", "backdoor"):
        out = run(name, constant)
        assert out.height == 1 and out.row(0, named=True)["estimator"] == "not_identifiable"
        assert math.isnan(out["estimate"][0])


def test_propensities_are_clipped_and_calibrated() -> None:
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 5000)
    t = (rng.random(5000) < np.where(z == 1, 0.999, 0.3)).astype(int)
    design = np.column_stack([np.ones(5000), z])
    e = propensity_scores(design, t, clip=0.05, calibrate=True)
    assert e.max() <= 0.95 and e.min() >= 0.05
    assert e[z == 0].mean() == pytest.approx(t[z == 0].mean(), abs=0.03)


def test_bootstrap_interval_covers_and_shrinks(world) -> None:
    data, _ = world
    terms = ESTIMATORS["naive"](data, [], "X", "Y")
    rng = np.random.default_rng(0)
    lo, hi = bootstrap_interval(terms, 200, rng)
    small = ESTIMATORS["naive"](data.head(2000), [], "X", "Y")
    lo_s, hi_s = bootstrap_interval(small, 200, rng)
    assert lo < terms.value() < hi
    assert (hi - lo) < (hi_s - lo_s)
    assert all(math.isnan(v) for v in bootstrap_interval(terms, 0, rng))  # no resamples: no interval


def test_unknown_estimator_is_named() -> None:
    with pytest.raises(KeyError, match="unknown estimator 'magic'"):
        point_estimate("magic", pl.DataFrame({"X": ["0"], "Y": ["1"]}), [], "X", "Y")


def test_every_estimator_is_registered_as_an_effects_plugin() -> None:
    from importlib.metadata import entry_points

    registered = {ep.name: ep.value for ep in entry_points(group="causalrec.effects")}
    for name, cls in PLUGINS.items():
        assert registered.get(name) == f"{cls.__module__}:{cls.__name__}", name
