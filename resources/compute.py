"""Where a step's data-parallel work runs: user-hash shards, one after another in the step's own
process (``local``, the default), or on a Dask cluster (``dask``).

A step fits its models once, in its own process; what grows with the log (scoring ranking
candidates, predicting nuisance models, summing doubly robust scores, counting rows) is cut
into shards by a hash of the user id and mapped over them. The shard functions only predict
and sum, so a shard's answer is the same wherever it runs, and the step combines the answers
exactly. The ``compute`` resource holds the Dask client: a ``LocalCluster`` of
``dask_workers`` workers (``dask_memory_limit`` each) started on first use, or an existing
scheduler's address (``dask_scheduler``) for a real cluster.
"""

from __future__ import annotations

import atexit
import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from causalrec_resources.settings import COMPUTE_ENGINES, current_settings
from causalrec_toolkit.tables import split_by_user, stable_hash, user_shards  # noqa: F401  (re-exported)

_CLIENTS: list[Any] = []  # the Dask clients this process made (one per cluster or address)


@functools.cache
def _local_cluster(workers: int, memory_limit: str) -> Any:
    """One ``LocalCluster`` per process, closed when the process ends."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, memory_limit=memory_limit, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    atexit.register(lambda: (client.close(), cluster.close()))
    _CLIENTS.append(client)
    return client


@functools.cache
def _remote(address: str) -> Any:
    from distributed import Client

    client = Client(address, set_as_default=False)
    atexit.register(client.close)
    _CLIENTS.append(client)
    return client


class ComputeResource(dg.ConfigurableResource):
    """User-hash shards of a step's data-parallel work, run locally or on Dask (module docstring)."""

    engine: str = Field(default="", description="'local' or 'dask' ('': CAUSALREC_COMPUTE, default local).")
    shards: int = Field(default=0, ge=0, description="User-hash shards (0: CAUSALREC_SHARDS, default 8).")
    dask_scheduler: str = Field(default="", description="An existing Dask scheduler ('': CAUSALREC_DASK_SCHEDULER).")
    dask_workers: int = Field(default=0, ge=0, description="LocalCluster workers (0: CAUSALREC_DASK_WORKERS).")
    dask_memory_limit: str = Field(default="", description="Per LocalCluster worker ('': CAUSALREC_DASK_MEMORY).")

    @property
    def engine_name(self) -> str:
        name = self.engine or current_settings().compute
        if name not in COMPUTE_ENGINES:
            raise ValueError(f"compute engine {name!r} is not one of {', '.join(COMPUTE_ENGINES)}")
        return name

    @property
    def shard_count(self) -> int:
        return self.shards or current_settings().shards

    def client(self) -> Any:
        """The Dask client: the configured scheduler's, else this process's ``LocalCluster``'s."""
        settings = current_settings()
        address = self.dask_scheduler or settings.dask_scheduler
        if address:
            return _remote(address)
        return _local_cluster(
            self.dask_workers or settings.dask_workers, self.dask_memory_limit or settings.dask_memory
        )

    def describe(self) -> str:
        if self.engine_name == "local":
            return f"{self.shard_count} user shards, one after another in this process"
        address = self.dask_scheduler or current_settings().dask_scheduler
        return f"{self.shard_count} user shards on Dask ({address or 'a LocalCluster'})"

    def map(self, fn: Callable[..., Any], parts: Iterable[Any], *shared: Any) -> Iterator[Any]:
        """``fn(part, *shared)`` for each part, in order; ``shared`` is sent to each worker once.
        On Dask at most two tasks per worker are in flight, so parts are built as they are sent."""
        if self.engine_name == "local":
            for part in parts:
                yield fn(part, *shared)
            return
        client = self.client()
        sent = [client.scatter(s, broadcast=True, hash=False) for s in shared]
        window = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        pending: deque = deque()
        for part in parts:
            pending.append(client.submit(fn, client.scatter(part, hash=False), *sent, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker_peak_rss() -> dict[str, int]:
    """Peak RSS (bytes) of every worker of the Dask clients this process started or joined,
    by worker address (empty where none was used): what a benchmark reads after a run."""
    peaks: dict[str, int] = {}
    for client in _CLIENTS:
        peaks |= client.run(_peak_rss)
    return peaks


def local_compute() -> ComputeResource:
    """The engine a plain function call uses: shards one after another in this process."""
    return ComputeResource(engine="local")
