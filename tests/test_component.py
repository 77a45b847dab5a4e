"""The ``CausalRecPipeline`` Component: two instances in one Dagster project.

``examples/two_pipelines`` is a ``dg`` project (its own ``pyproject.toml`` with ``[tool.dg]``, a
``defs/`` folder) that declares the simulator and a canonical shop directory under the key
prefixes ``simulated`` and ``shop``. ``dg list defs`` and ``dg check defs`` run there for real,
and both pipelines materialize from the CLI into their own storages. The unit tests build the
Component in process: bad YAML (an unknown plugin, a parameter out of bounds, a stage or prefix
that does not exist) fails when the definitions load, naming what is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from causalrec_assets.component import CausalRecPipeline
from tests.dagster_server import REPO

EXAMPLE = REPO / "examples" / "two_pipelines"
DG = str(Path(sys.executable).with_name("dg"))
STAGE_ASSETS = {
    "users", "items", "interactions", "validation_report", "item_embeddings", "user_embeddings", "causal_graph",
    "bayesian_network", "treatment_effects", "recommendations", "test_scores", "evaluation", "policy_value",
    "explanations", "published_snapshot",
}  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Dagster home configured as ``make`` configures one."""
    home = tmp_path_factory.mktemp("dg-home")
    (home / "dagster.yaml").write_text((REPO / "dagster-instance.yaml").read_text())
    return home


def dg_command(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("CAUSALREC_STORAGE", None)  # each instance has its own storage under the Dagster home
    return subprocess.run([DG, *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=timeout)


def test_dg_lists_two_pipelines_under_two_prefixes_and_checks_them(home: Path) -> None:
    listed = dg_command(home, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    keys = {a["asset_key"] for a in defs["assets"]}
    for prefix in ("simulated", "shop"):
        assert {f"{prefix}/{name}" for name in STAGE_ASSETS} <= keys
    assert all(k.split("/")[0] in ("simulated", "shop") for k in keys), keys
    assert {"simulated_causalrec", "shop_causalrec"} <= {j["name"] for j in defs["jobs"]}
    assert {"simulated_io_manager", "shop_io_manager"} <= {r["name"] for r in defs["resources"]}
    checked = dg_command(home, "check", "defs")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_both_pipelines_materialize_from_the_cli_into_their_own_storage(home: Path) -> None:
    for prefix, k in (("shop", 10), ("simulated", 5)):
        launched = dg_command(home, "launch", "--job", f"{prefix}_causalrec", timeout=600)
        assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
        storage = home / f"causalrec_{prefix}"
        recommendations = pl.read_parquet(storage / "recommendations.parquet")  # the prefix is the storage
        assert recommendations["rank"].max() == k
        assert (storage / "causal_graph.json").exists()
    shop_users = pl.read_parquet(home / "causalrec_shop" / "users.parquet")
    assert shop_users.height == pl.read_csv(EXAMPLE / "data" / "shop" / "users.csv").height
    assert pl.read_parquet(home / "causalrec_simulated" / "users.parquet").height == 600


def build(**attributes) -> dg.Definitions:
    return dg.component_defs(component=CausalRecPipeline(**attributes))


def test_an_instance_sets_its_plugin_defaults_in_the_launchpad_and_its_own_keys() -> None:
    defs = build(key_prefix="a", stages={"ranking": {"plugin": "popularity", "params": {"k": 3}}}, schedule=None)
    job = defs.resolve_job_def("a_causalrec")
    config = job.run_config_schema.config_type.fields["ops"].config_type.fields["a_ranking"]
    default = config.default_value["config"]
    assert default["plugin"] == "popularity" and default["popularity"]["k"] == 3
    # run config still switches plugin by name (sections of the defaults are filled in by Dagster)
    from causalrec_assets.stages.ranking.assets import RankingStageConfig

    for given, picked in (({}, "popularity"), ({"plugin": "uplift"}, "uplift")):
        value = dg.validate_run_config(job, {"ops": {"a_ranking": {"config": given}}})["ops"]["a_ranking"]["config"]
        assert RankingStageConfig(**value).plugin == picked, given
    assert {k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()} == {"a"}
    assert not list(defs.schedules or [])
    assert "a_io_manager" in (defs.resources or {})


def test_two_instances_merge_into_one_project_without_clashing() -> None:
    merged = dg.Definitions.merge(build(key_prefix="a"), build(key_prefix=["team", "b"], dataset="coat"))
    keys = merged.resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey(["a", "recommendations"]) in keys and dg.AssetKey(["team", "b", "recommendations"]) in keys
    merged.resolve_all_job_defs()  # op names, resource keys and checks do not collide


@pytest.mark.parametrize(
    "attributes, named",
    [
        ({"stages": {"ranking": {"plugin": "nosuch"}}}, "nosuch"),
        ({"stages": {"ranking": {"plugin": "causal", "params": {"k": 0}}}}, "k"),
        ({"stages": {"rank": {"plugin": "causal"}}}, "rank"),
        ({"executor": "threads"}, "threads"),
    ],
)
def test_bad_yaml_fails_when_the_definitions_load_naming_the_defect(attributes: dict, named: str) -> None:
    with pytest.raises(Exception, match=named):
        build(key_prefix="a", **attributes)


def test_a_prefix_that_cannot_name_jobs_is_refused() -> None:
    with pytest.raises(ValueError, match="my-shop"):
        build(key_prefix="my-shop")


def test_a_pipeline_reads_the_projects_own_assets_as_its_tables(small_world, tmp_path: Path) -> None:
    """``dataset_assets``: ingest reads three assets of the user's project (pandas here, through
    their own IO manager) and puts them under the same contract as any ingest plugin's tables."""

    @dg.asset(key=["raw", "users"])
    def raw_users():
        return small_world.users.to_pandas()

    @dg.asset(key=["raw", "items"])
    def raw_items():
        return small_world.items.to_pandas()

    @dg.asset(key=["raw", "events"])
    def raw_events():
        return small_world.interactions.to_pandas()

    pipeline = build(
        key_prefix="mine",
        storage=str(tmp_path / "storage"),
        dataset_assets={"users": "raw/users", "items": "raw/items", "interactions": "raw/events"},
    )
    project = dg.Definitions.merge(dg.Definitions(assets=[raw_users, raw_items, raw_events]), pipeline)
    ingest = dg.AssetSelection.assets(["mine", "users"], ["mine", "items"], ["mine", "interactions"])
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*project.assets],
            selection=dg.AssetSelection.key_prefixes("raw") | ingest,
            resources=project.resources,
            instance=instance,
        )
    assert result.success
    users = result.output_for_node("mine_ingest", "users")
    assert users.height == small_world.users.height and set(users.columns) == set(small_world.users.columns)
    assert result.output_for_node("mine_ingest", "interactions").height == small_world.interactions.height
    with pytest.raises(ValueError, match="interactions"):
        build(key_prefix="x", dataset_assets={"users": "raw/users", "items": "raw/items"})
