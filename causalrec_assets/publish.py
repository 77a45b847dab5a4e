"""Publishing: the last step of a run makes its staged outputs the storage's snapshot.

``published_snapshot`` depends on the pipeline's sinks, the stored assets no other one reads:
every stored asset is an ancestor of a sink, so Dagster runs it only when all of them were
materialized and every blocking check passed (a failed check skips everything downstream of
it, this step included), and the asset graph stays readable. A run that materializes only some assets
(the UI's "Materialize selected", declarative automation) is published by
``publish_sensor`` when it succeeds, with the same rule, provided no other run published in
the meantime (``causalrec_resources.snapshots``).
"""

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from causalrec_assets.metadata import OWNERS
from causalrec_resources.settings import current_settings
from causalrec_resources.snapshots import PublishRefused, PublishReport, Snapshots
from causalrec_resources.storage import STORAGE_TAG, StagedIOManager, lineage_of_run
from causalrec_resources.storage_lock import StorageLock

PUBLISH_ASSET = "published_snapshot"


def report_metadata(report: PublishReport, root: str) -> dict[str, dg.MetadataValue]:
    return {
        "snapshot": dg.MetadataValue.text(report.run_id),
        "previous_snapshot": dg.MetadataValue.text(report.previous or "none"),
        "produced": dg.MetadataValue.int(len(report.produced)),
        "carried_forward": dg.MetadataValue.text(", ".join(report.carried) or "nothing"),
        "storage": dg.MetadataValue.path(root),
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
    }


WAIT_SECONDS = 1.0  # between looks at what a run that selected only some assets has still to write
MAX_LOOKS = 7200


def run_events(context: dg.AssetExecutionContext, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    records = context.instance.get_records_for_run(context.run.run_id, of_type=kind).records
    return [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event is not None]


def why_not_publish(context: dg.AssetExecutionContext) -> str | None:
    """Why this run's outputs must stay staged (a failed step, a failed blocking check), or None."""
    if run_events(context, dg.DagsterEventType.STEP_FAILURE):
        return f"run {context.run.run_id} had a failed step: its outputs stay staged, unpublished"
    for event in run_events(context, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        check = event.asset_check_evaluation_data
        if not check.passed and check.blocking:
            return f"check {check.check_name} on {check.asset_key.to_user_string()} failed: nothing is published"
    return None


def still_to_write(context: dg.AssetExecutionContext, optional: frozenset[str]) -> list[str]:
    """Assets this run selected and has not written yet. Publishing waits on the sinks only, so
    in a run that selected some assets and not the sinks below them (``--select ingest,
    published_snapshot``) nothing orders it after them: it looks again until they are written."""
    written = {e.asset_key for e in run_events(context, dg.DagsterEventType.ASSET_MATERIALIZATION)}
    selected = context.run.asset_selection or set()
    return sorted(
        k.to_user_string()
        for k in selected
        if k != context.asset_key and k.path[-1] not in optional and k not in written
    )


def build_publish_asset(
    upstream: Iterable[dg.AssetKey], io_manager_key: str = "io_manager", optional: Iterable[str] = ()
) -> dg.AssetsDefinition:
    """The publishing step, after every key in ``upstream`` (the sinks), of the storage behind
    ``io_manager_key``; ``optional``: names of assets a run may select and not write."""
    skippable = frozenset(optional)

    @dg.asset(
        name=PUBLISH_ASSET,
        deps=sorted(set(upstream), key=lambda k: k.to_user_string()),
        group_name="publish",
        owners=OWNERS,
        kinds={"parquet"},
        required_resource_keys={io_manager_key},
    )
    def published_snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Every output of this run, published as one snapshot, atomically, once its checks passed."""
        refusal = why_not_publish(context)
        if refusal:
            raise dg.Failure(refusal)
        pending = still_to_write(context, skippable)
        if pending:
            context.log.info(f"waiting for {', '.join(pending)} before publishing")
            raise dg.RetryRequested(max_retries=MAX_LOOKS, seconds_to_wait=WAIT_SECONDS)
        manager = getattr(context.resources, io_manager_key)
        if not isinstance(manager, StagedIOManager):
            raise dg.Failure(f"the IO manager {type(manager).__name__} has no staging area to publish")
        report = manager.publish()
        context.log.info(
            f"published snapshot {report.run_id}: {len(report.produced)} assets written, "
            f"{len(report.carried)} carried forward from {report.previous or 'nothing'}"
        )
        return dg.MaterializeResult(metadata=report_metadata(report, str(manager.snapshots.root)))

    return published_snapshot


def publish_finished_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Publish a successful run that did not publish itself; what happened, in words."""
    snapshots = Snapshots(run.tags.get(STORAGE_TAG) or current_settings().storage_dir)
    if not snapshots.staging(run.run_id).is_dir():
        return f"run {run.run_id} staged nothing under {snapshots.root}"
    if snapshots.manifest(run.run_id) is not None:
        return f"run {run.run_id} is published already"
    lock = StorageLock(snapshots.state)
    held = lock.holder()
    if held and held[0].run_id != run.run_id and not lock.why_dead(*held, orchestrator_pid=-1):
        return f"run {run.run_id} stays staged: {held[0].describe(held[1])} holds {snapshots.root}"
    try:
        report = snapshots.publish(lineage_of_run(instance, run))
    except PublishRefused as refused:
        return str(refused)
    lock.release(run.run_id)
    return f"published run {run.run_id} ({len(report.produced)} assets) under {snapshots.root}"


def build_publish_sensor(name: str, storage: Path | None = None) -> dg.SensorDefinition:
    """Publishes successful runs that had no publishing step; ``storage``: only runs of that
    storage (a pipeline of several in one project), None: every run (the root location)."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=name,
        description="Publishes a successful run that materialized only some assets (and so had no publishing step).",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
    )
    def _sensor(context: dg.RunStatusSensorContext) -> dg.SkipReason:
        run = context.dagster_run
        if storage is not None and run.tags.get(STORAGE_TAG) != str(storage):
            return dg.SkipReason(f"run {run.run_id} did not write to {storage}")
        outcome = publish_finished_run(context.instance, run)
        context.log.info(outcome)
        return dg.SkipReason(outcome)

    return _sensor
