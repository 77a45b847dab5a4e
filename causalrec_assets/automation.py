"""Keeping the assets fresh: a schedule, a sensor on the dataset directory, and declarative
automation so downstream assets refresh when their inputs change and not otherwise."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

REFRESH_CRON_ENV = "CAUSALREC_REFRESH_CRON"
DEFAULT_CRON = "0 3 * * *"  # daily, 03:00

# Eager alone ignores blocking checks: also wait until every dependency's blocking checks passed.
DOWNSTREAM_CONDITION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def with_downstream_automation(assets: list[dg.AssetsDefinition], sources: set[str]) -> list[dg.AssetsDefinition]:
    """Give every asset not produced by the ``sources`` steps the downstream condition."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.to_user_string() in sources:
            return spec
        return spec.replace_attributes(automation_condition=DOWNSTREAM_CONDITION)

    return [a.map_asset_specs(apply) for a in assets]


def dataset_directory() -> Path | None:
    """The directory ``CAUSALREC_DATA`` names, when it names one."""
    data = os.environ.get("CAUSALREC_DATA", "").strip()
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


def refresh_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """The whole pipeline on a cron (``CAUSALREC_REFRESH_CRON``, default daily at 03:00)."""
    return dg.ScheduleDefinition(
        name="causalrec_refresh",
        job=job,
        cron_schedule=os.environ.get(REFRESH_CRON_ENV, DEFAULT_CRON),
        description="Refresh every causalrec asset on a cron (CAUSALREC_REFRESH_CRON, default daily).",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def dataset_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Requests a refresh when files in the dataset directory appear or change."""

    @dg.sensor(
        name="causalrec_dataset_changed",
        job=job,
        minimum_interval_seconds=30,
        description="Refreshes the pipeline when files in the CAUSALREC_DATA directory are added or changed.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        directory = dataset_directory()
        if directory is None:
            return dg.SkipReason("CAUSALREC_DATA does not name a dataset directory (the simulator needs no sensor)")
        before = json.loads(context.cursor) if context.cursor else {}
        after = fingerprint(directory)
        changed = changed_files(before, after)
        if not changed:
            return dg.SkipReason(f"no file changed in {directory}")
        context.update_cursor(json.dumps(after))
        run_key = hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:16]
        return dg.RunRequest(run_key=run_key, tags={"causalrec/changed": ", ".join(changed)[:200]})

    return _sensor
