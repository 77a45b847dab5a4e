"""Running it the way Dagster users do: a distributed engine, re-execution from failure,
the dataset sensor, the schedule, and declarative automation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl

from causalrec_assets.automation import dataset_sensor, refresh_schedule
from tests.conftest import write_canonical

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
COMPARED = ["recommendations", "test_scores", "treatment_effects", "causal_variables", "item_topics"]


def causalrec_job() -> dg.JobDefinition:
    """The project's ``causalrec`` job, at module scope so that ``dg.reconstructable`` can rebuild it."""
    from causalrec_assets import defs

    return defs.resolve_job_def("causalrec")


def _home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


def _cli_materialize(data: Path, storage: Path, home: Path, executor: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(_home(home)),
        "CAUSALREC_STORAGE": str(storage),
        "CAUSALREC_DATA": str(data),
        "CAUSALREC_EXECUTOR": executor,
    }
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", "*"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_dask_engine_gives_the_same_outputs_as_in_process(tmp_path: Path, small_world):
    data = write_canonical(tmp_path / "data", small_world, fmt="parquet")
    runs = {}
    for executor in ("in_process", "dask"):
        proc = _cli_materialize(data, tmp_path / executor / "storage", tmp_path / executor / "home", executor)
        assert proc.returncode == 0, proc.stderr[-4000:]
        runs[executor] = tmp_path / executor / "storage"
    for asset in COMPARED:
        local = pl.read_parquet(runs["in_process"] / f"{asset}.parquet")
        distributed = pl.read_parquet(runs["dask"] / f"{asset}.parquet")
        assert local.columns == distributed.columns, asset
        assert local.height == distributed.height, asset
        for col in local.columns:
            if local[col].dtype.is_float():
                assert (local[col] - distributed[col]).abs().max() < 1e-6, (asset, col)
            else:
                assert local[col].to_list() == distributed[col].to_list(), (asset, col)
    graphs = [json.loads((runs[e] / "causal_graph.json").read_text()) for e in runs]
    assert graphs[0] == graphs[1]


def test_reexecution_from_failure_skips_upstream(tmp_path: Path, small_world, monkeypatch):
    data = write_canonical(tmp_path / "data", small_world)
    broken_cache = tmp_path / "cache-is-a-file"
    broken_cache.write_text("not a directory")
    monkeypatch.setenv("CAUSALREC_DATA", str(data))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("CAUSALREC_CACHE", str(broken_cache))  # the embed stage cannot write its model
    job = dg.reconstructable(causalrec_job)
    run_config = {"execution": {"config": {"in_process": {}}}}  # Dagster's default executor, one process
    with dg.instance_for_test() as instance:
        with dg.execute_job(job, instance, run_config=run_config) as failed:
            assert not failed.success
            failed_steps = {e.step_key for e in failed.all_events if e.is_step_failure}
            assert failed_steps == {"item_embeddings"}
            first_id = failed.run_id
        monkeypatch.setenv("CAUSALREC_CACHE", str(tmp_path / "cache"))
        with dg.execute_job(
            job,
            instance,
            run_config=run_config,
            reexecution_options=dg.ReexecutionOptions.from_failure(first_id, instance),
        ) as again:
            assert again.success
            executed = {e.step_key for e in again.all_events if e.is_step_success}
    assert "item_embeddings" in executed and "ranking" in executed
    assert "ingest" not in executed and not any(key.endswith("_contract") for key in executed)
    assert (tmp_path / "storage" / "recommendations.parquet").exists()


def test_sensor_requests_a_refresh_when_dataset_files_change(tmp_path: Path, small_world, monkeypatch):
    data = write_canonical(tmp_path / "data", small_world)
    monkeypatch.setenv("CAUSALREC_DATA", str(data))
    sensor = dataset_sensor(dg.define_asset_job("causalrec", selection=dg.AssetSelection.all()), downstream=[])
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert len(first.run_requests) == 1
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert again.run_requests == [] and "no file changed" in again.skip_message
        extra = small_world.interactions.head(5)
        pl.concat([pl.read_csv(data / "interactions.csv"), extra.with_columns(pl.col("timestamp").cast(pl.String))],
                  how="vertical_relaxed").write_csv(data / "interactions.csv")  # fmt: skip
        changed = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(changed.run_requests) == 1
        assert "interactions.csv" in changed.run_requests[0].tags["causalrec/changed"]


def test_sensor_skips_without_a_dataset_directory(monkeypatch):
    monkeypatch.delenv("CAUSALREC_DATA", raising=False)
    sensor = dataset_sensor(dg.define_asset_job("causalrec", selection=dg.AssetSelection.all()), downstream=[])
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert result.run_requests == [] and "simulator" in result.skip_message


def test_schedule_cron_comes_from_config(monkeypatch):
    job = dg.define_asset_job("causalrec", selection=dg.AssetSelection.all())
    assert refresh_schedule(job).cron_schedule == "0 3 * * *"
    monkeypatch.setenv("CAUSALREC_REFRESH_CRON", "*/15 * * * *")
    assert refresh_schedule(job).cron_schedule == "*/15 * * * *"


def test_downstream_refreshes_when_inputs_change_and_not_otherwise(tmp_path: Path, small_world, monkeypatch):
    from causalrec_assets import defs

    monkeypatch.setenv("CAUSALREC_DATA", str(write_canonical(tmp_path / "data", small_world)))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(tmp_path / "storage"))
    with dg.instance_for_test() as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0  # nothing upstream has changed: nothing to do
        ingest_only = [dg.AssetKey(k) for k in ("users", "items", "interactions", "ground_truth", "true_uplift")]
        job = defs.resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance, asset_selection=ingest_only).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        requested = (
            {key.to_user_string() for key in result.get_requested_asset_keys()}
            if hasattr(result, "get_requested_asset_keys")
            else {r.key.to_user_string() for r in result.results if r.true_subset.size}
        )
        assert {"validation_report", "item_embeddings"} <= requested
        assert not requested & {"users", "items", "interactions"}
