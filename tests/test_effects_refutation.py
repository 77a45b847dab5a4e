"""Refutation of the headline effect: every refuter passes on worlds whose assumptions hold,
and each fails, naming the broken assumption, on a world built to break it; through Dagster
a failure shows on ``treatment_effects`` and, configured as ERROR, blocks what is downstream."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from causalrec_assets import contracts
from causalrec_assets.plugin_api import EffectInputs, PluginContext
from causalrec_assets.refutation import REFUTERS, headline, random_common_cause, random_halves, run_refutations
from causalrec_assets.stages.effects import refutation_checks
from causalrec_assets.variables import VariableEncoder
from causalrec_plugins.effects.backdoor import BackdoorConfig, BackdoorEffects
from causalrec_resources.storage import CausalrecIOManager
from causalrec_resources.variables import CausalVariablesResource

EDGES = [("segment", "exposure"), ("segment", "outcome"), ("kind", "outcome"), ("exposure", "outcome")]


def world(hidden: float, seed: int = 0, n_users: int = 600, n_items: int = 60) -> dict[str, pl.DataFrame]:
    """Users in three segments meet items of two kinds; exposure follows the segment, outcome
    the segment and the kind, and a true effect of 0.1. ``hidden`` is the strength of a user
    trait, absent from every table, that raises both exposure and outcome. The test slice
    randomizes exposure."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n_users)
    trait = rng.integers(0, 2, n_users)
    kind = rng.integers(0, 2, n_items)
    per_user = 30
    u = np.repeat(np.arange(n_users), per_user)
    i = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    test = np.tile(np.arange(per_user) >= 20, n_users)
    logit = -0.6 + 0.6 * segment[u] + hidden * (2 * trait[u] - 1)
    exposure = np.where(test, rng.random(u.size) < 0.5, rng.random(u.size) < 1 / (1 + np.exp(-logit)))
    p = 0.1 + 0.1 * segment[u] + 0.05 * kind[i] + 0.1 * exposure + 0.15 * hidden * trait[u]
    outcome = (rng.random(u.size) < np.clip(p, 0, 1)).astype(np.int8)
    return {
        "users": pl.DataFrame({"user_id": np.arange(n_users), "segment": np.array(list("abc"))[segment]}),
        "items": pl.DataFrame({"item_id": np.arange(n_items), "kind": np.array(["x", "y"])[kind]}),
        "interactions": pl.DataFrame(
            {
                "user_id": u,
                "item_id": i,
                "exposure": exposure.astype(np.int8),
                "outcome": outcome,
                "split": np.where(test, "test", "train"),
            }
        ),
    }


def variables_of(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    encoder = VariableEncoder().fit(tables["users"], tables["items"], contracts.train_rows(tables["interactions"]))
    return encoder.transform(contracts.train_rows(tables["interactions"])), encoder.transform(
        contracts.test_rows(tables["interactions"])
    )


def effects_of(variables: pl.DataFrame, edges) -> pl.DataFrame:
    plugin = BackdoorEffects(BackdoorConfig(n_bootstrap=100, network_bootstrap=0))
    return plugin.estimate(EffectInputs(variables, edges), PluginContext())


def verdicts(results) -> dict[str, tuple[bool, str]]:
    return {r.name: (r.passed, r.message) for r in results}


@pytest.fixture(scope="module")
def sound() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    train, test = variables_of(world(hidden=0.0))
    return train, test, effects_of(train, EDGES)


def test_every_refuter_passes_when_the_assumptions_hold(sound) -> None:
    train, test, effects = sound
    results = verdicts(run_refutations(effects, train, EDGES, test))
    assert set(results) == set(REFUTERS)
    for name, (passed, message) in results.items():
        assert passed, (name, message)
    assert "agrees" in results["randomized_slice"][1]


def test_an_unobserved_confounder_fails_the_randomized_slice() -> None:
    train, test = variables_of(world(hidden=1.5))
    effects = effects_of(train, EDGES)
    results = verdicts(run_refutations(effects, train, EDGES, test))
    passed, message = results["randomized_slice"]
    assert not passed
    assert "broken assumption: no unobserved common cause of exposure and outcome" in message
    # Placebos and random causes cannot see a confounder that is in no table (as in DoWhy).
    assert results["placebo_treatment"][0] and results["random_common_cause"][0]


def test_a_graph_missing_a_confounder_fails_the_placebo(sound) -> None:
    train, test, _ = sound
    wrong = [("kind", "outcome"), ("exposure", "outcome")]  # segment confounds but is not in the graph
    results = verdicts(run_refutations(effects_of(train, wrong), train, wrong, test))
    passed, message = results["placebo_treatment"]
    assert not passed
    assert "the adjustment set blocks every backdoor path" in message
    assert "drawn from the exposure's assignment model" in message
    assert not results["randomized_slice"][0]


def thin_overlap(seed: int, n: int = 400) -> pl.DataFrame:
    """Exposure nearly determined by a 12-level variable (propensity 0.03 or 0.97)."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 12, n)
    t = (rng.random(n) < np.where(z < 6, 0.03, 0.97)).astype(int)
    y = (rng.random(n) < np.clip(0.05 + 0.07 * z + 0.1 * t, 0, 1)).astype(int)
    return pl.DataFrame({"z": z.astype(str), "exposure": t.astype(str), "outcome": y.astype(str)})


@pytest.mark.parametrize("seed", [0, 1])
def test_thin_overlap_fails_random_halves_and_random_common_cause(seed: int) -> None:
    data = thin_overlap(seed)
    edges = [("z", "exposure"), ("z", "outcome"), ("exposure", "outcome")]
    head = headline(effects_of(data, edges))
    halves = random_halves(head, data, ["z"], "exposure", "outcome", n_splits=3)
    assert not halves.passed
    assert "positivity" in halves.message and "interval" in halves.message
    cause = random_common_cause(head, data, ["z"], "exposure", "outcome", n_simulations=4)
    assert not cause.passed
    assert "broken assumption: the estimate rests on the adjustment set" in cause.message


def test_rating_data_is_not_applicable() -> None:
    tables = world(hidden=0.0, n_users=50)
    train, test = variables_of(tables)
    constant = train.with_columns(pl.lit("1").alias("exposure"))
    effects = BackdoorEffects().estimate(EffectInputs(constant, EDGES), PluginContext())
    for result in run_refutations(effects, constant, EDGES, test):
        assert result.passed and not result.applicable
        assert "not applicable" in result.message


# --------------------------------------------------------------------- through Dagster


def dagster_world(tables: dict[str, pl.DataFrame]) -> list:
    """The check's upstream assets as plain assets over a prepared world, and an asset
    downstream of ``treatment_effects`` (as the ranking is)."""
    train, _ = variables_of(tables)

    @dg.asset
    def users() -> pl.DataFrame:
        return tables["users"]

    @dg.asset
    def items() -> pl.DataFrame:
        return tables["items"]

    @dg.asset
    def interactions() -> pl.DataFrame:
        return tables["interactions"]

    @dg.asset
    def item_topics() -> pl.DataFrame:
        return pl.DataFrame({"item_id": tables["items"]["item_id"], "item_topic": ["t0"] * tables["items"].height})

    @dg.asset
    def item_embeddings() -> pl.DataFrame:  # none: the encoder leaves affinity out
        return pl.DataFrame(
            {"item_id": [], "embedding": []},
            schema={"item_id": tables["items"].schema["item_id"], "embedding": pl.Array(pl.Float32, 4)},
        )

    @dg.asset
    def causal_variables() -> pl.DataFrame:
        return train

    @dg.asset
    def causal_graph() -> dict:
        return {"nodes": train.columns, "edges": [list(e) for e in EDGES]}

    @dg.asset
    def treatment_effects(causal_variables: pl.DataFrame) -> pl.DataFrame:
        return effects_of(causal_variables, EDGES)

    @dg.asset
    def downstream(treatment_effects: pl.DataFrame) -> pl.DataFrame:
        return treatment_effects.head(1)

    return [
        users,
        items,
        interactions,
        item_topics,
        item_embeddings,
        causal_variables,
        causal_graph,
        treatment_effects,
        downstream,
    ]


def materialize(tables, severity: str, tmp_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*dagster_world(tables), refutation_checks],
        resources={
            "io_manager": CausalrecIOManager(base_dir=str(tmp_path)),
            "variable_settings": CausalVariablesResource(),
        },
        run_config={"ops": {"refutation_checks": {"config": {"severity": severity, "n_splits": 2}}}},
        raise_on_error=False,
    )


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_failed_refutation_shows_on_the_asset_and_warns_by_default(tmp_path: Path) -> None:
    result = materialize(world(hidden=1.5), "WARN", tmp_path)
    checks = check_evaluations(result)
    assert set(checks) == set(REFUTERS)
    failed = checks["randomized_slice"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    assert "no unobserved common cause" in failed.description
    assert failed.metadata["assumption"].value.startswith("no unobserved common cause")
    assert checks["placebo_treatment"].passed
    assert result.output_for_node("downstream").height == 1  # a warning does not block


def test_an_error_severity_refutation_blocks_downstream(tmp_path: Path) -> None:
    result = materialize(world(hidden=1.5), "ERROR", tmp_path)
    failed = check_evaluations(result)["randomized_slice"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "treatment_effects" in materialized
    assert "downstream" not in materialized
