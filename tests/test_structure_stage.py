"""The structure stage around the learners: bootstrap stability, the cross-fitted affinity
variable, simulated worlds under the stage's tiers, and the picture on a real Dagster
materialization."""

from __future__ import annotations

import base64

import dagster as dg
import numpy as np
import polars as pl
import pytest

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.structure import assets as stage
from causalrec_plugins.ingest.simulator import TOPICS, SimulatorConfig, simulate
from causalrec_plugins.structure.hill_climb import HillClimbStructure
from causalrec_resources.compute import ComputeResource
from causalrec_toolkit import stability
from causalrec_toolkit.graph_picture import causal_paths, layers, render_png
from causalrec_toolkit.stability import edge_stability, resample_rows
from causalrec_toolkit.variables import AFFINITY, NO_PROFILE, VariableEncoder
from tests.conftest import failure_messages


def true_topics(items: pl.DataFrame) -> pl.DataFrame:
    """The simulator's topic of each item, read back from its text (stands in for clustering)."""

    def topic(text: str) -> str:
        return next(name for name, (_, nouns, _) in TOPICS.items() if any(n in text for n in nouns))

    return items.select("item_id", pl.col("text").map_elements(topic, return_dtype=pl.String).alias("item_topic"))


def world_variables(**config) -> tuple[pl.DataFrame, list[str]]:
    world = simulate(SimulatorConfig(**config))
    train = train_rows(world.interactions)
    encoder = VariableEncoder().fit(world.users, world.items, train, true_topics(world.items))
    return encoder.transform(train), world.truth.confounders


@pytest.fixture(scope="module")
def variables() -> pl.DataFrame:
    return world_variables(seed=3, n_users=400, n_items=96, n_topics=4, pairs_per_user=30)[0]


# ------------------------------------------------------------------ simulated worlds


@pytest.mark.parametrize(
    "config",
    [
        dict(seed=3, n_users=400, n_items=96, n_topics=4, pairs_per_user=30),
        dict(seed=21, n_users=500, n_items=120, n_topics=6, pairs_per_user=30, confounding=0.6, effect_scale=0.5),
    ],
)
def test_default_learner_finds_the_effect_and_every_confounder(config: dict) -> None:
    data, confounders = world_variables(**config)
    edges = set(HillClimbStructure().learn(data, stage.stage_knowledge(data), PluginContext()))
    assert ("exposure", "outcome") in edges
    for confounder in confounders:
        assert (confounder, "exposure") in edges and (confounder, "outcome") in edges, (confounder, sorted(edges))
    attributes = set(data.columns) - {"exposure", "outcome"}
    assert not [e for e in edges if e[1] in attributes], "nothing may point into an attribute"


def test_stage_knowledge_requires_the_effect_only_when_both_vary(variables: pl.DataFrame) -> None:
    knowledge = stage.stage_knowledge(variables)
    assert knowledge.required == [("exposure", "outcome")]
    assert knowledge.tiers[1:] == [["exposure"], ["outcome"]]
    ratings = variables.with_columns(pl.lit("1").alias("exposure"))  # rating data: every row exposed
    assert stage.stage_knowledge(ratings).required == []
    edges = HillClimbStructure(HillClimbStructure.Config(bootstrap=0)).learn(
        ratings, stage.stage_knowledge(ratings), PluginContext()
    )
    assert not [e for e in edges if "exposure" in e]


# ------------------------------------------------------------------ bootstrap stability


def test_bootstrap_stability_is_a_share_and_reproducible(variables: pl.DataFrame, monkeypatch) -> None:
    learner = HillClimbStructure(HillClimbStructure.Config(restarts=0))
    data = variables.head(2500)
    knowledge = stage.stage_knowledge(data)
    first = edge_stability(learner, data, knowledge, PluginContext(), resamples=5, seed=7, n_jobs=1)
    # Worker processes draw their own hash seeds: equal fractions also show that learning does
    # not depend on the order of Python sets of names. (Workers only start where they pay for
    # their start-up; here they are made to.)
    monkeypatch.setattr(stability, "WORKER_START_SECONDS", 0.0)
    again = edge_stability(learner, data, knowledge, PluginContext(), resamples=5, seed=7, n_jobs=2)
    assert first.resamples == 5 and first.failed == 0
    assert first.fractions == again.fractions
    assert all(0.0 <= s <= 1.0 for s in first.fractions.values())
    assert first.of(("exposure", "outcome")) == 1.0  # required
    assert all(abs(s * 5 - round(s * 5)) < 1e-9 for s in first.fractions.values())  # counts out of 5
    # 1,250-row subsamples are too small to find every weak confounder -> outcome edge each time
    assert any(s < 1.0 for s in first.fractions.values())


def test_resamples_are_subsamples_without_replacement_unless_bootstrap_is_asked_for() -> None:
    rows = resample_rows(1000, seed=3, index=2)
    assert len(rows) == 500 and len(set(rows.tolist())) == 500
    assert resample_rows(1000, seed=3, index=2).tolist() == rows.tolist()
    assert resample_rows(1000, seed=3, index=3).tolist() != rows.tolist()
    boot = resample_rows(1000, seed=3, index=2, scheme="bootstrap")
    assert len(boot) == 1000 and len(set(boot.tolist())) < 1000


# ------------------------------------------------------------------ affinity


def test_affinity_reads_the_other_half_of_the_users_log() -> None:
    """Each user's logged items alternate between two halves (in item order); a logged pair's
    profile is the mean vector of the positive items of the other half, so no pair's own
    outcome is part of its own affinity, and a pair outside the log reads both halves."""
    angles = np.array([0.0, 0.5, 1.6, 3.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    items = pl.DataFrame({"item_id": ["i0", "i1", "i2", "i3"], "text": ["t"] * 4})
    embeddings = pl.DataFrame({"item_id": items["item_id"], "embedding": vectors.tolist()})
    users = pl.DataFrame({"user_id": ["u0", "u1", "u2"]})
    train = pl.DataFrame(
        {
            "user_id": ["u0", "u0", "u0", "u1", "u1", "u2", "u2"],
            "item_id": ["i0", "i1", "i2", "i3", "i0", "i1", "i2"],
            "exposure": [1, 0, 1, 1, 0, 1, 1],
            "outcome": [1, 1, 1, 1, 0, 1, 1],
        }
    )
    # halves: u0 {i0, i2} | {i1}; u1 {i3} | {i0}; u2 {i2} | {i1}
    encoder = VariableEncoder(n_bins=2).fit(users, items, train, item_embeddings=embeddings)
    assert AFFINITY in encoder.variable_names
    model = encoder.affinity
    pairs = pl.DataFrame(
        {"user_id": ["u0", "u0", "u0", "u1", "u1", "u0"], "item_id": ["i0", "i2", "i1", "i3", "i0", "i3"]}
    )
    raw = model.raw(pairs)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert raw[0] == pytest.approx(cos(unit[1], unit[0]))  # (u0, i0): the other half holds i1
    assert raw[1] == pytest.approx(cos(unit[1], unit[2]))  # (u0, i2): the same half, the same profile
    assert raw[2] == pytest.approx(cos(unit[0] + unit[2], unit[1]))  # (u0, i1): the other half holds i0, i2
    assert np.isnan(raw[3])  # (u1, i3): u1's other half has no positive
    assert raw[4] == pytest.approx(cos(unit[3], unit[0]))  # (u1, i0): the other half holds i3
    assert raw[5] == pytest.approx(cos(unit[0] + unit[1] + unit[2], unit[3]))  # a new pair: both halves
    codes = encoder.pair_features(pairs)[AFFINITY].to_list()
    assert codes[3] == NO_PROFILE and all(c.startswith("q") for i, c in enumerate(codes) if i != 3)
    table = encoder.transform(train)
    assert table[AFFINITY].to_list() == encoder.pair_features(train)[AFFINITY].to_list()
    assert stage.stage_knowledge(table).tiers[0][-1] == AFFINITY


def test_affinity_without_any_other_positive_is_left_out_and_reported() -> None:
    items = pl.DataFrame({"item_id": ["i0", "i1"]})
    embeddings = pl.DataFrame({"item_id": ["i0", "i1"], "embedding": [[1.0, 0.0], [0.0, 1.0]]})
    train = pl.DataFrame({"user_id": ["u0", "u1"], "item_id": ["i0", "i1"], "exposure": [1, 1], "outcome": [1, 0]})
    encoder = VariableEncoder().fit(pl.DataFrame({"user_id": ["u0", "u1"]}), items, train, item_embeddings=embeddings)
    assert AFFINITY not in encoder.variable_names
    assert "no user has a positive outcome in the other half of their log" in encoder.skipped[AFFINITY]


# ------------------------------------------------------------------ picture and materialization


def test_causal_paths_and_layers() -> None:
    edges = [("age", "exposure"), ("exposure", "clicks"), ("clicks", "outcome"), ("exposure", "outcome")]
    edges += [("age", "outcome"), ("outcome", "later")]
    assert causal_paths(edges, "exposure", "outcome") == {
        ("exposure", "clicks"),
        ("clicks", "outcome"),
        ("exposure", "outcome"),
    }
    assert layers(["age", "exposure", "clicks", "outcome", "later", "alone"], edges) == {
        "age": 0,
        "alone": 0,
        "exposure": 1,
        "clicks": 2,
        "outcome": 3,
        "later": 4,
    }
    png = render_png({"nodes": ["a", "b"], "edges": [["a", "b"]], "stability": [0.4], "unstable_edges": [["a", "b"]]})
    assert png.startswith(b"\x89PNG")


def test_the_structure_asset_carries_the_picture_and_stability(variables: pl.DataFrame) -> None:
    @dg.asset(name="causal_variables")
    def fixed_variables() -> pl.DataFrame:
        return variables.head(3000)

    result = dg.materialize(
        [fixed_variables, stage.structure],
        resources={"io_manager": dg.InMemoryIOManager(), "compute": ComputeResource()},
        run_config={"ops": {"structure": {"config": {"plugin": "hill_climb", "hill_climb": {"bootstrap": 4}}}}},
    )
    assert result.success
    graph = result.output_for_node("structure", "causal_graph")
    assert len(graph["stability"]) == len(graph["edges"]) and all(0 <= s <= 1 for s in graph["stability"])
    assert graph["bootstrap"]["resamples"] == 4
    assert {tuple(e) for e in graph["unstable_edges"]} <= {tuple(e) for e in graph["edges"]}
    materialization = next(
        m for m in result.asset_materializations_for_node("structure") if m.asset_key == dg.AssetKey("causal_graph")
    )
    picture = materialization.metadata["graph"]
    assert isinstance(picture, dg.MarkdownMetadataValue)
    encoded = picture.value.split("data:image/png;base64,", 1)[1].rstrip(")")
    assert base64.b64decode(encoded).startswith(b"\x89PNG")
    assert materialization.metadata["exposure_to_outcome"].value is True
    assert "exposure" in materialization.metadata["knowledge"].value


def test_a_bad_config_fails_the_structure_step_with_the_defect_named(variables: pl.DataFrame) -> None:
    @dg.asset(name="causal_variables")
    def fixed_variables() -> pl.DataFrame:
        return variables.head(500)

    config = {"plugin": "pc", "pc": {"tiers": [["age_group"], ["no_such_variable"]], "bootstrap": 0}}
    result = dg.materialize(
        [fixed_variables, stage.structure],
        resources={"io_manager": dg.InMemoryIOManager(), "compute": ComputeResource()},
        run_config={"ops": {"structure": {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    assert "'no_such_variable' (tier 1)" in failure_messages(result)
