"""The doubly robust estimate from per-shard partial sums: it is EconML's LinearDRLearner on the
same folds and models, the shards' sums add up to the one-process estimate and interval (to
floating-point tolerance) whatever the number of shards, and a Dask LocalCluster gives the same
numbers as the shards run in process."""

from __future__ import annotations

import numpy as np
import pytest
from causal_worlds import CONFOUNDERS, scenario

from causalrec_plugins.effects.common import graph_adjustment
from causalrec_plugins.effects.crossfit import ScoreSums, WeightSums, user_folds
from causalrec_plugins.effects.estimators import (
    EstimatorConfig,
    _covariates,
    _mask,
    doubly_robust,
    effect_data,
    fitting,
)
from causalrec_plugins.effects.nuisance import nuisance_models
from causalrec_plugins.effects.within_user import within_user
from causalrec_resources.compute import ComputeResource

CFG = EstimatorConfig()


@pytest.fixture(scope="module", params=["interaction", "taste"])
def data(request):
    world = scenario(request.param, seed=1, n_users=300)
    inputs = world.effect_inputs(CONFOUNDERS[request.param])
    return effect_data(inputs, graph_adjustment(inputs))


def test_the_sharded_estimate_is_econmls_linear_dr_learner_on_the_same_folds(data) -> None:
    from econml.dr import LinearDRLearner

    folds = user_folds(data.user_keys, CFG.folds, CFG.seed)
    assert all((folds[data.units == u] == folds[data.units == u][0]).all() for u in np.unique(data.units)[:50])
    splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(CFG.folds)]
    propensity, regression = nuisance_models(CFG.nuisance, data.binary, _mask(data), CFG.seed, CFG.nuisance_rows)
    reference = LinearDRLearner(
        model_propensity=propensity,
        model_regression=regression,
        discrete_outcome=data.binary,
        cv=splits,
        min_propensity=CFG.propensity_clip,
        random_state=CFG.seed,
    )
    with fitting():
        reference.fit(data.y, data.t, X=None, W=_covariates(data))
    ours = doubly_robust(data, CFG, ComputeResource(engine="local", shards=5)).estimate("dr_learner")
    assert ours.estimate == pytest.approx(float(np.ravel(reference.ate())[0]), abs=1e-10)


def test_shard_sums_add_up_to_the_one_process_estimate(data) -> None:
    one = doubly_robust(data, CFG, ComputeResource(engine="local", shards=1))
    for shards in (2, 7):
        many = doubly_robust(data, CFG, ComputeResource(engine="local", shards=shards))
        for name in ("dr_learner", "ips", "snips"):
            a, b = one.estimate(name), many.estimate(name)
            assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high), abs=1e-12)
        assert many.overlap() == pytest.approx(one.overlap(), abs=1e-12)
    one_within = within_user(data, CFG, fitted=one, compute=ComputeResource(engine="local", shards=1))
    many_within = within_user(data, CFG, fitted=one, compute=ComputeResource(engine="local", shards=7))
    assert (many_within.estimate, many_within.ci_low) == pytest.approx((one_within.estimate, one_within.ci_low))


def test_partial_sums_give_the_direct_formulas() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    users = rng.integers(0, 200, n)
    scores, t, y = rng.normal(1, 2, n), rng.integers(0, 2, n), rng.normal(0, 1, n)
    e = rng.uniform(0.1, 0.9, n)
    halves = users % 2 == 0
    sums = ScoreSums.of(scores[halves], users[halves]) + ScoreSums.of(scores[~halves], users[~halves])
    per_user = np.bincount(users, weights=scores - scores.mean())
    assert sums.mean == pytest.approx(scores.mean())
    assert sums.stderr == pytest.approx(np.sqrt((per_user**2).sum()) / n)
    w1, w0 = t / e, (1 - t) / (1 - e)
    m1, m0 = (w1 * y).sum() / w1.sum(), (w0 * y).sum() / w0.sum()
    psi = w1 * (y - m1) / w1.mean() - w0 * (y - m0) / w0.mean()
    value, stderr = (WeightSums.of(t[:999], y[:999], e[:999]) + WeightSums.of(t[999:], y[999:], e[999:])).estimate()
    assert value == pytest.approx(m1 - m0) and stderr == pytest.approx(psi.std(ddof=1) / np.sqrt(n))


def test_a_dask_cluster_gives_the_in_process_estimates(data) -> None:
    local = doubly_robust(data, CFG, ComputeResource(engine="local", shards=4))
    dask = ComputeResource(engine="dask", shards=4, dask_workers=2, dask_memory_limit="2GB")
    remote = doubly_robust(data, CFG, dask)
    for name in ("dr_learner", "ips", "snips"):
        a, b = local.estimate(name), remote.estimate(name)
        assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high), abs=1e-12)
    assert within_user(data, CFG, fitted=local, compute=dask).estimate == pytest.approx(
        within_user(data, CFG, fitted=local).estimate, abs=1e-12
    )
