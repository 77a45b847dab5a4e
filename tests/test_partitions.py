"""Daily partitions of the interaction log: a new day in the dataset directory makes the
sensor request one run that materializes only that partition and what depends on it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from causalrec_assets.definitions import INGESTED, build_definitions
from causalrec_assets.partitions import day_column, interaction_days


def _write_days(directory: Path, interactions: pl.DataFrame, days: list[str]) -> None:
    folder = directory / "interactions"
    folder.mkdir(parents=True, exist_ok=True)
    with_day = interactions.with_columns(day_column(interactions))
    for day in days:
        with_day.filter(pl.col("day") == day).drop("day").write_parquet(folder / f"{day}.parquet")


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out.setdefault(mat.asset_key.to_user_string(), set()).add(mat.partition)
    return out


def _run(job, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        asset_selection=request.asset_selection,
        tags={k: v for k, v in request.tags.items() if k.startswith("dagster/asset_partition_range")},
    )
    assert result.success
    return result


@pytest.fixture
def daily(tmp_path: Path, small_world, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    small_world.users.write_parquet(data / "users.parquet")
    small_world.items.write_parquet(data / "items.parquet")
    days = sorted(day_column(small_world.interactions).unique().to_list())
    monkeypatch.setenv("CAUSALREC_PARTITIONS", "daily")
    monkeypatch.setenv("CAUSALREC_DATA", str(data))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(tmp_path / "storage"))
    return data, days


def test_new_day_refreshes_only_its_partition_and_downstream(daily, small_world):
    data, days = daily
    _write_days(data, small_world.interactions, days[:-1])
    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    sensor = defs.get_sensor_def("causalrec_dataset_changed")
    downstream = {k.to_user_string() for a in defs.assets for k in a.keys} - INGESTED

    with dg.instance_for_test() as instance, dg.partition_loading_context(dynamic_partitions_store=instance):
        ctx = dict(instance=instance, repository_def=defs.get_repository_def())

        def tick_and_add(cursor):
            """One tick that adds the new days' partitions, then the tick that runs them."""
            added = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, **ctx))
            assert added.run_requests == []
            for request in added.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            return [list(r.partition_keys) for r in added.dynamic_partitions_requests], sensor.evaluate_tick(
                dg.build_sensor_context(cursor=cursor, **ctx)
            )

        added, first = tick_and_add(None)
        assert added == [days[:-1]]
        assert sorted(instance.get_dynamic_partitions(interaction_days.name)) == days[:-1]
        assert len(first.run_requests) == 1  # every existing day in one single-run backfill, with the tables
        bootstrap = _materialized(_run(job, instance, first.run_requests[0]))
        assert bootstrap["interactions"] == set(days[:-1])
        assert {"users", "items"} <= set(bootstrap) and downstream <= set(bootstrap)

        quiet = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, **ctx))
        assert quiet.run_requests == []

        _write_days(data, small_world.interactions, days[-1:])  # a new day of interactions lands
        added, tick = tick_and_add(first.cursor)
        assert added == [days[-1:]]
        assert len(tick.run_requests) == 1 and tick.run_requests[0].partition_key == days[-1]

        refresh = _materialized(_run(job, instance, tick.run_requests[0]))
        assert refresh["interactions"] == {days[-1]}  # only the new partition
        assert set(refresh) == {"interactions"} | downstream  # and what depends on it; not users or items

    train_rows = small_world.interactions.filter(pl.col("split") == "train").height
    stored = pl.read_parquet(Path(data.parent / "storage") / "causal_variables.parquet")
    assert stored.height == train_rows  # downstream read every day's partition
