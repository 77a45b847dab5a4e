"""Sensitivity of the headline to unobserved confounding: E-values as VanderWeele and Ding
define them, and a figure that the randomized slice brings down where a confounder in no table
is at work (the hidden world) and leaves alone where every confounder is observed."""

from __future__ import annotations

import math

import polars as pl
import pytest
from causal_worlds import CONFOUNDERS, scenario

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.effects.assets import headline_sensitivity
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_toolkit import e_value, sensitivity

QUICK = BackdoorConfig(network_bootstrap=4)
OBSERVED = ("strong", "negative", "interaction", "numeric", "taste")


def test_e_values_follow_vanderweele_and_ding() -> None:
    assert e_value(2.0) == pytest.approx(2 + math.sqrt(2))
    assert e_value(0.5) == pytest.approx(e_value(2.0))  # a protective effect: its inverse
    assert e_value(1.0) == 1.0
    # a rate of 0.2 raised by 0.1 is a risk ratio of 1.5; an interval crossing zero needs nothing
    result = sensitivity(0.1, -0.01, 0.21, baseline=0.2)
    assert result.e_value == pytest.approx(1.5 + math.sqrt(1.5 * 0.5))
    assert result.e_value_ci == 1.0
    # a continuous outcome: the standardised difference d as the risk ratio exp(0.91 d)
    assert sensitivity(2.0, 1.0, 3.0, baseline=20.0, sd=4.0).e_value == pytest.approx(e_value(math.exp(0.91 * 0.5)))
    assert sensitivity(0.1, 0.05, 0.15, baseline=0.2).proven_bias is None  # no slice: nothing proven


def test_a_slice_that_disagrees_by_more_than_the_intervals_proves_confounding() -> None:
    agreeing = sensitivity(0.10, 0.09, 0.11, baseline=0.3, slice_effect=0.095, slice_se=0.01)
    assert agreeing.proven_bias == 0 and agreeing.robustness == agreeing.e_value_interval > 1
    refuting = sensitivity(0.20, 0.19, 0.21, baseline=0.3, slice_effect=0.08, slice_se=0.01)
    assert refuting.proven_bias == pytest.approx(0.12 - 1.959964 * math.hypot(0.005102, 0.01), abs=1e-4)
    assert refuting.proven_e_value > 1 and refuting.robustness == 1.0
    assert "treat the headline as confounded" in refuting.describe()


@pytest.fixture(scope="module")
def figures() -> dict[tuple[str, int], object]:
    out = {}
    for seed in (0, 1):
        for world in ("hidden", *OBSERVED):
            prepared = scenario(world, seed)
            inputs = prepared.effect_inputs(CONFOUNDERS[world])
            table = BackdoorEffects(QUICK).estimate(inputs, PluginContext())
            head = table.filter(pl.col("estimand") == "ATE").row(0, named=True)
            out[(world, seed)] = headline_sensitivity(head, inputs)
    return out


def test_the_sensitivity_figure_is_smaller_on_the_hidden_world_than_on_the_observed_ones(figures) -> None:
    for seed in (0, 1):
        hidden = figures[("hidden", seed)]
        assert hidden.proven_bias > 0.05 and hidden.robustness == 1.0, hidden
        for world in OBSERVED:
            observed = figures[(world, seed)]
            assert observed.proven_bias == 0.0, (world, seed, observed)
            assert observed.robustness > 1.2, (world, seed, observed)
