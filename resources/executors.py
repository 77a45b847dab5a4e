"""Where the steps of a run execute, chosen by configuration, not by code changes.

``CAUSALREC_EXECUTOR`` picks the engine: ``multiprocess`` (Dagster's default: one process
per step on this machine), ``in_process``, or ``dask`` (Dagster's ``dask_executor``: a local
Dask cluster by default, or an existing scheduler at ``CAUSALREC_DASK_SCHEDULER``, e.g.
``tcp://scheduler:8786``). On Kubernetes, use ``dagster-k8s``'s ``k8s_job_executor`` (one pod
per step); see README. Distributed engines re-import the code location, so they need the
persistent IO manager (every asset is a file under ``CAUSALREC_STORAGE``, reachable by every
worker) and a persistent Dagster instance (``DAGSTER_HOME``).
"""

from __future__ import annotations

import dagster as dg

from causalrec_resources.settings import current_settings


def executor_from_env() -> dg.ExecutorDefinition:
    settings = current_settings()
    name = settings.executor
    if name == "multiprocess":  # Dagster's default; run config may still pick in_process
        return dg.multi_or_in_process_executor
    if name == "in_process":
        return dg.in_process_executor
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
