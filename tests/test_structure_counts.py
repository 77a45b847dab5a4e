"""Sufficient statistics: every built-in learner, the network's CPDs and the G-test give the
same answer from the count table as from the rows, and a resample of the counts is a
resample of the log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy.stats import chi2, chi2_contingency

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.structure import assets as stage
from causalrec_assets.stages.structure.protocol import COUNT
from causalrec_plugins.structure.ges import GESStructure
from causalrec_plugins.structure.hill_climb import HillClimbStructure
from causalrec_plugins.structure.mmhc import MMHCStructure
from causalrec_plugins.structure.pc import PCStructure
from causalrec_resources.compute import ComputeResource
from causalrec_toolkit.bayesnet import cpds_to_frame, fit_network
from causalrec_toolkit.counts import (
    count_table,
    g_test,
    resample_counts,
    rows_of,
    sharded_count_table,
)
from causalrec_toolkit.stability import edge_stability
from tests.test_structure_stage import world_variables


@pytest.fixture(scope="module")
def variables() -> pl.DataFrame:
    return world_variables(seed=5, n_users=500, n_items=96, n_topics=4, pairs_per_user=30)[0]


def test_count_table_holds_every_row_once_with_its_count(variables: pl.DataFrame) -> None:
    counts = count_table(variables)
    assert counts.height < variables.height / 3
    assert rows_of(counts) == variables.height
    assert counts.select(pl.exclude(COUNT)).is_duplicated().sum() == 0
    assert count_table(variables.sample(fraction=1.0, shuffle=True, seed=1)).equals(counts)  # order-free
    with pytest.raises(ValueError, match="already has"):
        count_table(counts)


def test_shards_counts_summed_are_the_count_table(variables: pl.DataFrame) -> None:
    for shards in (1, 3, 8):
        summed = sharded_count_table(variables, ComputeResource(engine="local", shards=shards))
        assert summed.equals(count_table(variables)), shards


@pytest.mark.parametrize("learner", [HillClimbStructure, PCStructure, MMHCStructure, GESStructure])
def test_learners_find_the_same_graph_from_counts_as_from_rows(variables: pl.DataFrame, learner) -> None:
    knowledge = stage.stage_knowledge(variables)
    plugin = learner(learner.Config(bootstrap=0))
    assert plugin.accepts_counts
    from_rows = plugin.learn(variables, knowledge, PluginContext(seed=3))
    from_counts = plugin.learn(count_table(variables), knowledge, PluginContext(seed=3))
    assert from_counts == from_rows
    assert ("exposure", "outcome") in from_counts


def test_network_from_counts_has_the_cpds_of_the_rows(variables: pl.DataFrame) -> None:
    edges = HillClimbStructure(HillClimbStructure.Config(bootstrap=0)).learn(
        variables, stage.stage_knowledge(variables), PluginContext()
    )
    rows = cpds_to_frame(fit_network(variables, edges)).sort("variable", "parents", "state")
    counts = cpds_to_frame(fit_network(count_table(variables), edges)).sort("variable", "parents", "state")
    assert rows.select(pl.exclude("probability")).equals(counts.select(pl.exclude("probability")))
    np.testing.assert_allclose(counts["probability"].to_numpy(), rows["probability"].to_numpy(), atol=1e-12)


@pytest.mark.parametrize("given", [[], ["age_group"], ["age_group", "item_topic", "price_tier"]])
def test_g_test_on_counts_is_the_sum_over_strata_of_scipys(variables: pl.DataFrame, given: list[str]) -> None:
    """Each stratum's log-likelihood ratio test on its crosstab (scipy, no continuity
    correction, observed levels only, as pgmpy's ``GSq`` builds it), summed."""
    stat = dof = 0.0
    frame = variables.to_pandas()
    for _, stratum in frame.groupby(given) if given else [(None, frame)]:
        table = pd.crosstab(stratum["exposure"], stratum["outcome"]).to_numpy()
        if min(table.shape) > 1:
            stat += chi2_contingency(table, correction=False, lambda_="log-likelihood")[0]
            dof += (table.shape[0] - 1) * (table.shape[1] - 1)
    ours, our_dof, p = g_test(count_table(variables), "exposure", "outcome", given)
    assert ours == pytest.approx(stat, rel=1e-9) and our_dof == dof
    assert p == pytest.approx(chi2.sf(stat, dof), rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("scheme", ["subsample", "bootstrap"])
def test_resampled_counts_are_distributed_as_resampled_rows(variables: pl.DataFrame, scheme: str) -> None:
    """Over repeated draws the counts of one cell have the mean and spread of that cell's
    count in row resamples (hypergeometric or binomial)."""
    counts = count_table(variables)
    n, cell = rows_of(counts), int(np.argmax(counts[COUNT].to_numpy()))
    k = int(counts[COUNT][cell])
    draws = []
    for seed in range(400):
        sample = resample_counts(counts, np.random.default_rng(seed), scheme, 0.5)
        assert rows_of(sample) == (n if scheme == "bootstrap" else round(n / 2))
        assert (sample[COUNT] > 0).all()
        hit = sample.join(counts.select(pl.exclude(COUNT)).slice(cell, 1), on=counts.columns[:-1], how="semi")
        draws.append(int(hit[COUNT].sum()))
    p = k / n
    mean, var = (n * p, n * p * (1 - p)) if scheme == "bootstrap" else (k / 2, k / 2 * (1 - p) * 0.5 * n / (n - 1))
    assert np.mean(draws) == pytest.approx(mean, abs=4 * np.sqrt(var / 400))
    assert np.var(draws) == pytest.approx(var, rel=0.25)


def test_stability_on_counts_is_reproducible_and_finds_the_effect(variables: pl.DataFrame) -> None:
    learner = HillClimbStructure(HillClimbStructure.Config(bootstrap=0))
    knowledge = stage.stage_knowledge(variables)
    counts = count_table(variables)
    first = edge_stability(learner, counts, knowledge, PluginContext(), resamples=6, seed=7, n_jobs=1)
    again = edge_stability(learner, counts, knowledge, PluginContext(), resamples=6, seed=7, n_jobs=1)
    assert first.resamples == 6 and first.fractions == again.fractions
    assert first.of(("exposure", "outcome")) == 1.0
