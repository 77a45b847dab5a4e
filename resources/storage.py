"""Where assets live: one file per asset under the storage directory, published by
write-audit-publish (``causalrec_resources.snapshots``): a run writes into its own staging
folder, reads its upstream assets from there (or from the snapshot it started from), and only
a run whose blocking checks all passed publishes, in one atomic switch, at its end. One run at
a time holds a storage (``causalrec_resources.storage_lock``).

``<asset>.parquet`` through Polars for tables, ``<asset>.json`` for the few assets that are
documents (the causal graph, the simulator's truth), ``<asset>.pkl`` for the one fitted
object (``variable_encoding``, read back by the steps of the same code). Built on Dagster's ``UPathIOManager``
(``dagster-polars`` cannot read inputs under Polars 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from causalrec_resources.memory import release_freed_memory
from causalrec_resources.settings import current_settings
from causalrec_resources.snapshots import PublishReport, Snapshots
from causalrec_resources.storage_lock import StorageLock, pid_alive
from causalrec_toolkit.files import atomic_path

STORAGE_TAG = "causalrec/storage"

JSON_ASSETS: frozenset[str] = frozenset({"causal_graph", "ground_truth"})
PICKLED_ASSETS: frozenset[str] = frozenset({"variable_encoding"})


def storage_dir(explicit: str = "") -> Path:
    """``explicit``, else ``CAUSALREC_STORAGE``, else a folder under the Dagster home."""
    return Path(explicit).expanduser() if explicit else current_settings().storage_dir


def _atomic_write(path: UPath, write: Any) -> None:
    """Write through a temporary sibling, then rename (``causalrec_toolkit.files.atomic_path``):
    readers never see half a file and a failure leaves the previous file as it was."""
    with atomic_path(path) as tmp:
        write(tmp)


def wants_lazy(context: dg.InputContext) -> bool:
    """Whether the input is typed ``pl.LazyFrame`` (the step reads only the rows and columns it
    collects: a large table never has to be whole in memory)."""
    try:
        dagster_type = context.dagster_type
    except dg.DagsterInvariantViolationError:  # a context built by hand, without a type
        return False
    return getattr(dagster_type, "typing_type", None) is pl.LazyFrame


def sink_table(frame: pl.LazyFrame, path: UPath, name: str) -> None:
    """Run a lazy table into a Parquet file with the streaming engine; a source that fails to
    read on the way (a damaged row group, a CSV row of the wrong type) names the asset."""
    try:
        frame.sink_parquet(str(path.path) if path.protocol in ("", "file") else path)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as err:
        raise ValueError(f"{name}: its source could not be read to the end while it was written: {err}") from None


def _pickle_into(obj: Any, path: UPath) -> None:
    with path.open("wb") as sink:
        pickle.dump(obj, sink, protocol=pickle.HIGHEST_PROTOCOL)


def _suffix_for(path: UPath) -> str:
    """The file suffix of the asset at ``path`` (partitioned assets are folders of files)."""
    names = {path.name, *path.parts[-3:-1]}
    if names & JSON_ASSETS:
        return ".json"
    return ".pkl" if names & PICKLED_ASSETS else ".parquet"


class PolarsJsonUPathIOManager(dg.UPathIOManager):
    """Polars DataFrames as Parquet, dicts as JSON; outputs go under ``base_path`` (a run's
    staging folder), inputs are looked up in ``read_roots`` in order (first hit wins, partition
    by partition)."""

    extension = None

    def __init__(
        self, base_path: UPath, read_roots: Sequence[UPath] | None = None, key_prefix: Sequence[str] = ()
    ) -> None:
        super().__init__(base_path=base_path)
        self.read_roots = list(read_roots) if read_roots else [base_path]
        self.key_prefix = tuple(key_prefix)

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        """The asset's name under the storage: a pipeline's key prefix is its storage already."""
        path = tuple(context.asset_key.path)
        n = len(self.key_prefix)
        return UPath(*(path[n:] if n and path[:n] == self.key_prefix else path))

    def _with_extension(self, path: UPath) -> UPath:
        return path.with_suffix(path.suffix + _suffix_for(path))

    def _found(self, relative: Sequence[str], partition: str | None = None) -> UPath | None:
        for root in self.read_roots:
            candidate = root.joinpath(*relative)
            if partition is not None:
                candidate = self.make_safe_partition_path(candidate, partition)
            if self._with_extension(candidate).exists() or (partition is None and candidate.is_dir()):
                return candidate
        return None

    def _get_path_without_extension(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        path = super()._get_path_without_extension(context)
        if isinstance(context, dg.OutputContext) or not context.has_asset_key or context.has_asset_partitions:
            return path
        relative = path.relative_to(self._base_path).parts
        return self._found(relative) or path

    def get_path_for_partition(self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str) -> UPath:
        if isinstance(context, dg.OutputContext):
            return super().get_path_for_partition(context, path, partition)
        relative = path.relative_to(self._base_path).parts
        return self._found(relative, partition) or super().get_path_for_partition(context, path, partition)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, dict) and path.suffix == ".json":
            text = json.dumps(obj, indent=2, default=str)
            _atomic_write(path, lambda p: p.write_text(text))
        elif path.suffix == ".pkl":  # pickled straight into the file: no second copy of it in memory
            _atomic_write(path, lambda p: _pickle_into(obj, p))
        elif isinstance(obj, pl.DataFrame) and path.suffix == ".parquet":
            _atomic_write(path, lambda p: obj.write_parquet(str(p.path) if p.protocol in ("", "file") else p))
        elif isinstance(obj, pl.LazyFrame) and path.suffix == ".parquet":  # streamed: never whole in memory
            _atomic_write(path, lambda p: sink_table(obj, p, path.stem))
        else:
            table = "a polars DataFrame or LazyFrame (stored as Parquet)"
            expected = "a dict (stored as JSON)" if path.suffix == ".json" else table
            raise TypeError(
                f"asset {path.stem!r} must be {expected}, got {type(obj).__name__}; documents are stored as JSON "
                f"only for the assets {sorted(JSON_ASSETS)}"
            )

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".pkl":
            with path.open("rb") as file:  # unpickled from the file: no copy of its bytes in memory
                return pickle.load(file)
        source = str(path.path) if path.protocol in ("", "file") else path
        if wants_lazy(context):  # an input typed pl.LazyFrame: a scan, read only as far as the step collects
            return pl.scan_parquet(source)
        return pl.read_parquet(source)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """A single-run backfill returns ``{partition_key: table}``: one file per partition."""
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            if not isinstance(obj, dict) or set(obj) != set(context.asset_partition_keys):
                raise TypeError("a run over several partitions must return {partition_key: table} for each of them")
            for key, path in self._get_paths_for_partitions(context).items():
                self.make_directory(path.parent)
                self.dump_to_path(context=context, obj=obj[key], path=path)
            context.add_output_metadata(
                {"partitions": len(obj), "dagster/row_count": sum(v.height for v in obj.values())}
            )
            return
        super().handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        """An unpartitioned asset reading every partition of a table gets them as one table.
        A step's first input first returns what the previous step freed (``release_freed_memory``)."""
        step = id(getattr(context, "_step_context", None))  # one per step: its first input releases
        if step != getattr(self, "_step", None):
            self._step = step
            release_freed_memory()
        try:
            value = super().load_input(context)
        except FileNotFoundError as missing:
            name = context.asset_key.to_user_string() if context.has_asset_key else "this input"
            looked = ", ".join(str(r) for r in self.read_roots)
            raise FileNotFoundError(
                f"{name} is neither staged by this run (or the run it re-executes) nor published: looked in {looked}"
            ) from missing
        if isinstance(value, dict) and value and all(isinstance(v, pl.DataFrame) for v in value.values()):
            return pl.concat([value[k] for k in sorted(value)], how="diagonal_relaxed")
        return value

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict[str, Any]:
        if isinstance(obj, pl.LazyFrame):  # its producer counted it in its streaming pass
            return {"columns": ", ".join(obj.collect_schema().names())}
        if isinstance(obj, pl.DataFrame):
            return {"dagster/row_count": obj.height, "columns": ", ".join(obj.columns)}
        return {}


class StagedIOManager(PolarsJsonUPathIOManager):
    """The IO manager of one run on a local storage: its staging, its lease, its publish."""

    def __init__(
        self, snapshots: Snapshots, lineage: Sequence[str], lock: StorageLock, key_prefix: Sequence[str] = ()
    ) -> None:
        self.snapshots, self.lineage, self.lock = snapshots, list(lineage), lock
        roots = [UPath(p) for p in snapshots.read_roots(self.lineage)]
        staging = UPath(snapshots.staging(self.lineage[0]))
        super().__init__(base_path=staging, read_roots=roots, key_prefix=key_prefix)
        self._stop = threading.Event()

    @property
    def run_id(self) -> str:
        return self.lineage[0]

    def publish(self) -> PublishReport:
        """Publish this run's outputs as the storage's snapshot, then give the storage back."""
        report = self.snapshots.publish(self.lineage)
        self.lock.release(self.run_id)
        return report

    def guard(self, orchestrator_pid: int, log: Any) -> None:
        """Keep the lease fresh, and end this step process if the run's orchestrator dies
        (a step of a killed run must not go on writing)."""
        self.lock.heartbeat(self.run_id, self._stop)
        if orchestrator_pid == os.getpid():
            return

        def watch() -> None:
            while not self._stop.wait(1.0):
                if not pid_alive(orchestrator_pid):
                    log.error(f"run {self.run_id}: its orchestrator (pid {orchestrator_pid}) is gone; step stops")
                    os._exit(70)

        threading.Thread(target=watch, name="causalrec-orphan-watch", daemon=True).start()

    def close(self) -> None:
        self._stop.set()


def lineage_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """[run, the run it re-executes, ...]: re-execution reads what its parents staged."""
    chain, parent = [run.run_id], run.parent_run_id
    while parent and parent not in chain:
        chain.append(parent)
        record = instance.get_run_by_id(parent)
        parent = record.parent_run_id if record else None
    return chain


def orchestrator_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The process that runs the run's plan (where ``RUN_START`` was logged); this one if unknown."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event and event.pid else os.getpid()


def _finished(instance: dg.DagsterInstance) -> Any:
    def finished(run_id: str) -> bool | None:
        record = instance.get_run_by_id(run_id)
        return None if record is None else record.is_finished

    return finished


def mark_failed_if_running(instance: dg.DagsterInstance, run_id: str, why: str) -> None:
    """A run whose process was killed stays STARTED for ever unless someone says otherwise."""
    record = instance.get_run_by_id(run_id)
    if record is not None and not record.is_finished:
        instance.report_run_failed(record, message=f"marked failed by a later run: {why}")


class CausalrecIOManager(dg.ConfigurableIOManagerFactory):
    """Stores every asset under ``base_dir`` (empty: ``CAUSALREC_STORAGE`` or the Dagster home),
    through write-audit-publish; ``wait_s`` (-1: ``CAUSALREC_STORAGE_WAIT``) is how long a run
    waits for another one that holds the storage before it is refused; ``key_prefix`` is the
    pipeline's asset key prefix, left out of file names."""

    base_dir: str = ""
    wait_s: int = -1
    key_prefix: list[str] = []

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsJsonUPathIOManager:
        settings = current_settings()
        configured = self.base_dir or settings.storage
        if "://" in configured:  # an object store (s3://, gs://, …) through fsspec: no links, no rename
            context.log.warning(
                f"storage {configured} is an object store: outputs are written in place, without "
                "write-audit-publish (mount it as a folder to get staging and atomic publishing)"
            )
            return PolarsJsonUPathIOManager(base_path=UPath(configured), key_prefix=self.key_prefix)
        snapshots = Snapshots(storage_dir(self.base_dir))
        run = context.dagster_run
        if run is None or context.instance is None:  # outside a run (a notebook, a unit test): read only
            current = snapshots.current()
            return PolarsJsonUPathIOManager(base_path=UPath(current or snapshots.root), key_prefix=self.key_prefix)
        instance = context.instance
        lock = StorageLock(snapshots.state, run_finished=_finished(instance))
        pid = orchestrator_pid(instance, run.run_id)
        wait = settings.storage_wait if self.wait_s < 0 else self.wait_s
        taken_from = lock.acquire(run.run_id, pid, wait_s=wait, log=context.log)
        if taken_from:
            mark_failed_if_running(instance, taken_from, "its process died while it held the storage")
        if STORAGE_TAG not in run.tags:
            instance.add_run_tags(run.run_id, {STORAGE_TAG: str(snapshots.root)})
        manager = StagedIOManager(snapshots, lineage_of_run(instance, run), lock, self.key_prefix)
        manager.guard(pid, context.log)
        return manager

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[PolarsJsonUPathIOManager]:
        manager = self.create_io_manager(context)
        try:
            yield manager
        finally:
            if isinstance(manager, StagedIOManager):
                manager.close()


@dg.input_manager(required_resource_keys={"io_manager"})
def stored_asset_loader(context: dg.InputContext) -> Any:
    """An op input that is a stored asset (``In(metadata={"asset": "items"}, ...)``), read
    through the IO manager, so a plain op job reads the same files as the asset jobs."""
    key = dg.AssetKey.from_user_string(context.definition_metadata["asset"])
    return context.resources.io_manager.load_input(dg.build_input_context(asset_key=key))
