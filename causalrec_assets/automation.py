"""Keeping the assets fresh: a schedule, a sensor on the dataset directory, and declarative
automation so downstream assets refresh when their inputs change and not otherwise."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from causalrec_assets.partitions import day_fingerprints, interaction_days
from causalrec_resources.settings import CausalrecSettings, current_settings

# Eager alone ignores blocking checks: also wait until every dependency's blocking checks passed.
DOWNSTREAM_CONDITION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def with_downstream_automation(assets: list[dg.AssetsDefinition], sources: set[str]) -> list[dg.AssetsDefinition]:
    """Give every asset not produced by the ``sources`` steps the downstream condition."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.to_user_string() in sources:
            return spec
        return spec.replace_attributes(automation_condition=DOWNSTREAM_CONDITION)

    return [a.map_asset_specs(apply) for a in assets]


def dataset_directory(settings: CausalrecSettings | None = None) -> Path | None:
    """The directory the dataset setting (``CAUSALREC_DATA``) names, when it names one."""
    data = (settings or current_settings()).data
    path = Path(data).expanduser() if data else None
    return path if path is not None and path.is_dir() else None


def fingerprint(directory: Path) -> dict[str, str]:
    """Name → size and modification time of every file in the dataset directory (recursive)."""
    prints = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        prints[str(path.relative_to(directory))] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return prints


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def refresh_schedule(
    job: dg.UnresolvedAssetJobDefinition, cron: str = "", name: str = "causalrec_refresh"
) -> dg.ScheduleDefinition:
    """The whole pipeline on a cron (``CAUSALREC_REFRESH_CRON``, default daily at 03:00)."""
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron or current_settings().refresh_cron,
        description="Refresh every causalrec asset on a cron (CAUSALREC_REFRESH_CRON, default daily).",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def dataset_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    downstream: list[dg.AssetKey],
    settings: CausalrecSettings | None = None,
    prefix: Sequence[str] = (),
    name: str = "causalrec_dataset_changed",
) -> dg.SensorDefinition:
    """Requests a refresh when files in the dataset directory appear or change.

    Unpartitioned, a change refreshes the whole pipeline. With daily partitions, each new or
    changed day gets its partition added and one run of that partition of ``interactions``
    and what depends on it; users and items are re-read only when their files changed."""

    settings = settings or current_settings()

    def key(table: str) -> dg.AssetKey:
        return dg.AssetKey([*prefix, table])

    @dg.sensor(
        name=name,
        target=job.selection,
        minimum_interval_seconds=30,
        description="Refreshes the pipeline when files in the CAUSALREC_DATA directory are added or changed.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        directory = dataset_directory(settings)
        if directory is None:
            return dg.SkipReason("CAUSALREC_DATA does not name a dataset directory (the simulator needs no sensor)")
        state = json.loads(context.cursor) if context.cursor else {}
        files = fingerprint(directory)
        changed = changed_files(state.get("files", {}), files)
        if not changed:
            return dg.SkipReason(f"no file changed in {directory}")
        tag = {"causalrec/changed": ", ".join(changed)[:200]}
        if settings.partitions != "daily":
            run_key = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
            context.update_cursor(json.dumps({"files": files}))
            return dg.RunRequest(run_key=run_key, tags=tag)
        days = day_fingerprints(load_interactions(str(directory)))
        known = set(context.instance.get_dynamic_partitions(interaction_days.name))
        new_days = sorted(d for d in days if d not in known)
        if new_days:  # add the partitions first; the next tick (cursor unchanged) runs them
            return dg.SensorResult(dynamic_partitions_requests=[interaction_days.build_add_request(new_days)])
        pending = sorted(d for d in days if state.get("days", {}).get(d) != days[d])
        tables_changed = any(not name.startswith("interactions") for name in changed)
        tables = [key(k) for k in ("users", "items", "ground_truth", "true_uplift")]
        requests = []
        if pending:  # one run: a single partition, or a single-run range over the pending days
            span = (
                {"dagster/asset_partition_range_start": pending[0], "dagster/asset_partition_range_end": pending[-1]}
                if len(pending) > 1
                else {}
            )
            requests.append(
                dg.RunRequest(
                    run_key=f"days:{pending[0]}..{pending[-1]}:{days[pending[-1]]}",
                    partition_key=None if span else pending[0],
                    asset_selection=[*(tables if tables_changed else []), key("interactions"), *downstream],
                    tags={**tag, **span},
                )
            )
        elif tables_changed:
            requests.append(dg.RunRequest(run_key=f"tables:{hash(json.dumps(files, sort_keys=True))}",
                                          asset_selection=[*tables, *downstream], tags=tag))  # fmt: skip
        context.update_cursor(json.dumps({"files": files, "days": days}))
        return dg.SensorResult(run_requests=requests)

    return _sensor


def load_interactions(data: str = ""):
    """The interactions of the dataset ``data`` (empty: CAUSALREC_DATA), read by the ``auto`` ingest
    plugin, as one table (a plugin may give a scan)."""
    from causalrec_assets.contracts import collected
    from causalrec_assets.plugin_api import PluginContext
    from causalrec_assets.stage_config import plugin_from_config, stage_config_class

    config = stage_config_class("ingest")(plugin="auto", auto={"data": data})
    plugin = plugin_from_config("ingest", config)
    return collected(plugin.load(PluginContext()).interactions)
