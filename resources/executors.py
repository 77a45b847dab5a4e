"""Where the steps of a run execute, chosen by configuration, not by code changes.

``CAUSALREC_EXECUTOR`` picks the engine: ``auto`` (the default: ``in_process`` for a dataset
small enough that starting a process per step, ~7 s of imports each, costs more than the
steps themselves — the simulator, or a directory under ``SMALL_DATASET_BYTES`` — and
``multiprocess`` otherwise), ``multiprocess`` (Dagster's default: one process per step on
this machine), ``in_process``, or ``dask`` (Dagster's ``dask_executor``: a local
Dask cluster by default, or an existing scheduler at ``CAUSALREC_DASK_SCHEDULER``, e.g.
``tcp://scheduler:8786``). On Kubernetes, use ``dagster-k8s``'s ``k8s_job_executor`` (one pod
per step); see README. Distributed engines re-import the code location, so they need the
persistent IO manager (every asset is a file under ``CAUSALREC_STORAGE``, reachable by every
worker) and a persistent Dagster instance (``DAGSTER_HOME``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from causalrec_resources.settings import CausalrecSettings, current_settings

# Past this a log's steps run for minutes and hold gigabytes, and one process shared by all of
# them is worse than 7 s of imports per step: 3.7 GB of the effects step's memory on a
# 4-million-pair log (39 MB of Parquet) was still resident when ranking began.
SMALL_DATASET_BYTES = 16 * 2**20


def dataset_bytes(data: str) -> int | None:
    """The size of a dataset directory's files (None: a built-in name, no directory)."""
    folder = Path(data).expanduser() if data else None
    if folder is None or not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def auto_executor_name(settings: CausalrecSettings) -> str:
    """``in_process`` for the simulator's default world and small directories, else ``multiprocess``."""
    size = dataset_bytes(settings.data)
    return "in_process" if (size is None or size < SMALL_DATASET_BYTES) else "multiprocess"


def in_process_by_default() -> dg.ExecutorDefinition:
    """Dagster's ``multi_or_in_process_executor`` with ``in_process`` as its default: run config
    that names either engine (``execution: {config: {multiprocess: {}}}``) keeps working."""
    default = dg.multi_or_in_process_executor
    return dg.ExecutorDefinition(
        name="multi_or_in_process_executor",
        config_schema=dg.Field(default.config_schema.config_type, default_value={"in_process": {}}),
        executor_creation_fn=default.executor_creation_fn,
        requirements=lambda config: default.get_requirements(config),
        description="One process (the default here: the dataset is small) or one per step.",
    )


def executor_from_env() -> dg.ExecutorDefinition:
    return executor_for(current_settings())


def executor_for(settings: CausalrecSettings) -> dg.ExecutorDefinition:
    """The executor ``settings.executor`` names (``auto``: chosen by the dataset's size)."""
    name = auto_executor_name(settings) if settings.executor == "auto" else settings.executor
    if name == "multiprocess":  # Dagster's default; run config may still pick in_process
        return dg.multi_or_in_process_executor
    if name == "in_process":
        return in_process_by_default()
    if name == "dask":
        from dagster_dask import dask_executor

        address = settings.dask_scheduler
        cluster = (
            {"existing": {"address": address}}
            if address
            else {"local": {"n_workers": settings.dask_workers, "threads_per_worker": 1}}
        )
        return dask_executor.configured({"cluster": cluster}, name="causalrec_dask")
    raise AssertionError(f"unreachable: settings allowed executor {name!r}")
