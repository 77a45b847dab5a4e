"""Daily partitions of the interaction log, for incremental refreshes.

With ``CAUSALREC_PARTITIONS=daily`` the ``interactions`` asset is partitioned by the day of
each row's ``timestamp`` (rows without one fall in the ``undated`` partition). Partitions are
dynamic: the dataset sensor adds a partition for every new day it finds and requests a run
of just that partition and what depends on it. Downstream assets read every partition.
Without the setting, ``interactions`` is one table and ``dagster asset materialize --select
'*'`` needs no partition.
"""

from __future__ import annotations

import hashlib

import dagster as dg
import polars as pl

UNDATED = "undated"

interaction_days = dg.DynamicPartitionsDefinition(name="interaction_days")


def day_column(interactions: pl.DataFrame) -> pl.Series:
    """Each row's partition key: ``YYYY-MM-DD`` of its timestamp, else ``undated``."""
    if "timestamp" not in interactions.columns:
        return pl.Series("day", [UNDATED] * interactions.height, dtype=pl.String)
    ts = interactions["timestamp"]
    if ts.dtype == pl.String:
        ts = ts.str.to_datetime(strict=False)
    elif ts.dtype.is_integer():
        ts = pl.from_epoch(ts, time_unit="s")
    return ts.dt.strftime("%Y-%m-%d").fill_null(UNDATED).alias("day")


def rows_of_day(interactions: pl.DataFrame, day: str) -> pl.DataFrame:
    return interactions.filter(day_column(interactions) == day)


def day_fingerprints(interactions: pl.DataFrame) -> dict[str, str]:
    """Day → a hash of that day's rows, so a changed day is noticed as well as a new one."""
    frame = interactions.with_columns(day_column(interactions)).with_columns(
        pl.struct(pl.exclude("day")).hash(seed=0).alias("_row")
    )
    out = {}
    for (day,), group in frame.group_by("day", maintain_order=True):
        digest = hashlib.sha256(group["_row"].sort().to_numpy().tobytes()).hexdigest()[:16]
        out[str(day)] = f"{group.height}:{digest}"
    return dict(sorted(out.items()))
