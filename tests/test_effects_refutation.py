"""Refutation of the headline effect: the refuters re-run the headline's own estimator; every
one passes where the assumptions hold; a confounder that no table holds fails the randomized
slice and is named as unobserved confounding, a misspecified estimator as misspecification;
through Dagster the checks are labelled as they behave, and a refuted headline is flagged
downstream."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from causal_worlds import CONFOUNDERS, Prepared, prepare

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.effects import assets as effects_stage
from causalrec_assets.stages.effects.protocol import EffectInputs
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_plugins.effects.single import IPSEffects, NaiveEffects
from causalrec_plugins.ingest.scenarios import attribute_world, sample_world
from causalrec_resources.compute import ComputeResource
from causalrec_resources.storage import CausalrecIOManager
from causalrec_resources.variables import CausalVariablesResource
from causalrec_toolkit.bayesnet import cpds_to_frame, fit_network
from causalrec_toolkit.refutation import MISSPECIFIED, REFUTERS, UNOBSERVED, run_refutations

QUICK = BackdoorConfig(network_bootstrap=4)


def hidden_world(strength: float, seed: int = 0, n_users: int = 400) -> Prepared:
    """The attribute scenario plus a circumstance of each meeting, in no table (nor in any
    history), that raises exposure and outcome."""
    rng = np.random.default_rng(seed)
    world = sample_world(attribute_world(rng, n_users, 96, context=strength), rng, 30, 12, name="hidden")
    return prepare(world, seed)


def refute(world: Prepared, plugin, confounders: list[str], reference_plugin: str = "backdoor") -> dict:
    inputs = world.effect_inputs(confounders)
    context = PluginContext()
    table = plugin.estimate(inputs, context)
    reference = effects_stage.reference_estimates(table, inputs, reference_plugin, context)
    results = run_refutations(
        table, inputs, lambda changed, name: plugin.reestimate(changed, name, context), reference=reference
    )
    return {r.name: r for r in results}


@pytest.fixture(scope="module")
def sound() -> Prepared:
    return hidden_world(0.0)


def test_every_refuter_passes_when_the_assumptions_hold(sound) -> None:
    results = refute(sound, BackdoorEffects(QUICK), CONFOUNDERS["hidden"])
    assert set(results) == set(REFUTERS)
    for name, result in results.items():
        assert result.passed and result.applicable, (name, result.message)
    assert "agrees with the randomized slice" in results["randomized_slice"].message


def test_a_confounder_no_table_holds_fails_the_slice_as_unobserved_confounding() -> None:
    observed = [*CONFOUNDERS["hidden"], "affinity"]  # every observed confounder, the history included
    results = refute(hidden_world(1.0), BackdoorEffects(QUICK), observed)
    slice_check = results["randomized_slice"]
    assert not slice_check.passed
    assert slice_check.cause == UNOBSERVED
    assert "Most likely cause: unobserved confounding" in slice_check.message
    assert "no unobserved common cause" in slice_check.message
    # the placebos cannot see a confounder that is in no table (as in DoWhy)
    assert results["placebo_treatment"].passed


def test_a_misspecified_estimator_is_named_as_such_not_as_unobserved_confounding(sound) -> None:
    """The naive difference ignores the observed confounders: the slice disagrees with it,
    the reference estimators on the same adjustment set agree with the slice."""
    results = refute(sound, NaiveEffects(), CONFOUNDERS["hidden"])
    slice_check = results["randomized_slice"]
    assert not slice_check.passed and slice_check.cause == MISSPECIFIED
    assert "misspecification of the headline's estimator, not an unobserved confounder" in slice_check.message
    assert "(reference)" in slice_check.message
    assert not results["placebo_treatment"].passed
    assert results["placebo_treatment"].cause == MISSPECIFIED


def test_a_graph_missing_a_confounder_fails_the_placebo(sound) -> None:
    across_users = BackdoorEffects(QUICK.model_copy(update={"estimators": ["dr_learner", "naive"]}))
    results = refute(sound, across_users, ["price_tier"])  # age and category confound too
    placebo = results["placebo_treatment"]
    assert not placebo.passed
    assert "drawn from the exposure's assignment model" in placebo.message
    assert "the adjustment blocks every backdoor path" in placebo.message


def test_the_comparison_within_users_survives_a_graph_missing_user_and_topic_confounders(sound) -> None:
    """Age (a user's) and category (an item topic's) are left out of the graph: the estimate
    across users keeps their confounding, the one within each user's topic cancels it, and the
    headline follows the randomized slice to it."""
    inputs = sound.effect_inputs(["price_tier"])
    out = BackdoorEffects(QUICK).estimate(inputs, PluginContext())
    rows = {r["estimator"]: r for r in out.filter(pl.col("estimand") == "ATE").iter_rows(named=True)}
    truth = sound.world.truth.ate
    assert abs(rows["dr_learner"]["estimate"] - truth) > 0.03, rows["dr_learner"]
    assert abs(rows["within_user"]["estimate"] - truth) < 0.02, rows["within_user"]
    assert out.row(0, named=True)["estimator"] == "within_user"


def test_the_refuters_rerun_the_headlines_own_estimator(sound) -> None:
    calls: list[str] = []

    class Recording(IPSEffects):
        def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
            calls.append(estimator)
            return super().reestimate(inputs, estimator, context)

    refute(sound, Recording(), CONFOUNDERS["hidden"], reference_plugin="")
    assert calls and set(calls) == {"ips"}


def test_on_a_large_log_the_refuters_re_estimate_on_a_sample_and_still_judge_right(sound) -> None:
    """With ``max_rows`` under the log's rows the re-estimating refuters see a random sample
    (and say how large), the slice weighs the full headline; a sound world still passes and a
    graph missing its confounders still fails its placebo."""
    inputs = sound.effect_inputs(CONFOUNDERS["hidden"])
    plugin, context = IPSEffects(), PluginContext()
    rows_seen: list[int] = []

    def reestimate(changed: EffectInputs, name: str) -> float:
        rows_seen.append(changed.variables.height)
        return plugin.reestimate(changed, name, context)

    table = plugin.estimate(inputs, context)
    half = inputs.variables.height // 2
    results = {r.name: r for r in run_refutations(table, inputs, reestimate, max_rows=half)}
    assert max(rows_seen) == half  # never the whole log
    for name, result in results.items():
        assert result.passed, (name, result.message)
        assert (result.details.get("sampled_rows") == half) == (name != "randomized_slice"), name
    assert results["randomized_slice"].original == table.row(0, named=True)["estimate"]
    blind = sound.effect_inputs([])  # no adjustment: the confounding shows in the placebo drawn from assignment
    blind_table = plugin.estimate(blind, context)
    placebo = run_refutations(blind_table, blind, reestimate, max_rows=half)[0]
    assert placebo.name == "placebo_treatment" and not placebo.passed, placebo.message


def test_rating_data_is_not_applicable(sound) -> None:
    inputs = sound.effect_inputs(CONFOUNDERS["hidden"]).with_treatment(np.ones(sound.variables.height))
    table = BackdoorEffects(QUICK).estimate(inputs, PluginContext())
    for result in run_refutations(table, inputs, lambda changed, name: float("nan")):
        assert result.passed and not result.applicable
        assert "not applicable" in result.message


# --------------------------------------------------------------------- through Dagster


def upstream(world: Prepared, confounders: list[str]) -> list[dg.AssetsDefinition]:
    """The effects stage's upstream assets over a prepared world, its real assets, and an
    asset downstream of ``treatment_effects`` that reads the refutation verdict (as the
    ranking does)."""
    tables = {
        "users": world.world.users,
        "items": world.world.items,
        "interactions": world.world.interactions,
        "item_topics": world.topics,
        "item_embeddings": world.embeddings,
        "bayesian_network": cpds_to_frame(fit_network(world.variables, world.edges(confounders))),
    }
    graph = {"nodes": world.variables.columns, "edges": [list(e) for e in world.edges(confounders)]}
    assets = [constant(name, value) for name, value in [*tables.items(), ("causal_graph", graph)]]
    stage = importlib.reload(effects_stage)  # picks up CAUSALREC_REFUTATION

    @dg.asset
    def downstream(context, treatment_effects: pl.DataFrame):  # noqa: ANN001 (Dagster reads the annotation)
        from causalrec_assets.stages.ranking.assets import refutation_verdict

        return dg.Output(treatment_effects.head(1), metadata={"headline_refuted": refutation_verdict(context)})

    from causalrec_assets.stages.structure.assets import variables

    return [*assets, variables, stage.treatment_effects, downstream]


def constant(name: str, value) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def _asset():
        return value

    return _asset


def materialize(world: Prepared, tmp_path: Path) -> dg.ExecuteInProcessResult:
    config = {"backdoor": {"network_bootstrap": 2}}
    return dg.materialize(
        upstream(world, CONFOUNDERS["hidden"]),
        resources={
            "io_manager": CausalrecIOManager(base_dir=str(tmp_path)),
            "variable_settings": CausalVariablesResource(),
            "compute": ComputeResource(),
        },
        run_config={"ops": {"treatment_effects": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def confounded() -> Prepared:
    return hidden_world(1.0, seed=1)


def test_by_default_a_refutation_warns_is_labelled_non_blocking_and_is_flagged_downstream(confounded, tmp_path) -> None:
    result = materialize(confounded, tmp_path)
    specs = {s.name: s for s in effects_stage.treatment_effects.check_specs}
    assert set(specs) == set(REFUTERS) and not any(s.blocking for s in specs.values())
    checks = check_evaluations(result)
    failed = checks["randomized_slice"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    assert failed.metadata["likely_cause"].value == UNOBSERVED
    flag = result.asset_materializations_for_node("downstream")[0].metadata["headline_refuted"].value
    assert "randomized_slice (unobserved confounding)" in flag
    effects = result.asset_materializations_for_node("treatment_effects")[0].metadata
    assert effects["headline_estimator"].value == "dr_learner" and "headline_reason" in effects


def test_in_block_mode_a_refutation_is_an_error_that_blocks_downstream(confounded, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CAUSALREC_REFUTATION", "block")
    try:
        result = materialize(confounded, tmp_path)
        assert all(s.blocking for s in effects_stage.treatment_effects.check_specs)
    finally:
        monkeypatch.delenv("CAUSALREC_REFUTATION")
        importlib.reload(effects_stage)
    failed = check_evaluations(result)["randomized_slice"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "treatment_effects" in materialized and "downstream" not in materialized
