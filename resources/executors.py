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

import os

import dagster as dg

EXECUTORS = ("multiprocess", "in_process", "dask")


def executor_from_env() -> dg.ExecutorDefinition:
    name = os.environ.get("CAUSALREC_EXECUTOR", "multiprocess").strip().lower() or "multiprocess"
    if name == "multiprocess":  # Dagster's default; run config may still pick in_process
        return dg.multi_or_in_process_executor
    if name == "in_process":
        return dg.in_process_executor
    if name == "dask":
        from dagster_dask import dask_executor

        address = os.environ.get("CAUSALREC_DASK_SCHEDULER", "").strip()
        cluster = (
            {"existing": {"address": address}}
            if address
            else {"local": {"n_workers": int(os.environ.get("CAUSALREC_DASK_WORKERS", "2")), "threads_per_worker": 1}}
        )
        return dask_executor.configured({"cluster": cluster}, name="causalrec_dask")
    raise ValueError(f"CAUSALREC_EXECUTOR={name!r} is not one of {', '.join(EXECUTORS)}")
