"""The variable table as sufficient statistics: its distinct rows and how often each occurs.

Structure scores, CI tests and the network's CPDs read nothing of a discrete table but its
counts, so a log of millions of training pairs over nine variables is one group-by away from
a table of a few thousand rows (``count_table``), and a resample of the log is a reweighting
of those counts (``resample_counts``: multivariate hypergeometric for a subsample without
replacement, multinomial for a bootstrap), with the same distribution as resampling rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import chdtrc

from causalrec_toolkit.tables import ShardMapper

__all__ = ["COUNT", "count_table", "g_test", "resample_counts", "rows_of", "sharded_count_table"]

COUNT = "__rows__"  # a count table's column: how many rows of the variable table each row stands for


def count_table(variables: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Distinct rows of ``variables`` with their number of rows in ``COUNT``, in a fixed order
    (sorted), so the same log gives the same table and the same resamples."""
    frame = variables.lazy()
    names = frame.collect_schema().names()
    if COUNT in names:
        raise ValueError(f"the variable table already has a {COUNT!r} column: it is a count table")
    counted = frame.group_by(names).agg(pl.len().cast(pl.Int64).alias(COUNT))
    # categorical variables as their values: the table's order is the values', not the log's
    return counted.with_columns(pl.col(pl.Categorical).cast(pl.String)).sort(names, nulls_last=True).collect()


def sharded_count_table(variables: pl.DataFrame, compute: ShardMapper) -> pl.DataFrame:
    """``count_table`` of ``variables`` from each shard's own count table, summed: counts add,
    so the same table whatever the shards (a shard here is a block of rows)."""
    shards = max(1, min(compute.shard_count, variables.height))
    step = -(-variables.height // shards) if variables.height else 1
    parts = (variables.slice(start, step) for start in range(0, max(variables.height, 1), step))
    names = variables.columns
    counted = pl.concat(list(compute.map(count_table, parts)))
    summed = counted.group_by(names).agg(pl.col(COUNT).sum().cast(pl.Int64))
    return summed.sort(names, nulls_last=True)


def rows_of(data: pl.DataFrame) -> int:
    """Rows a table stands for: the sum of its counts, or its height."""
    return int(data[COUNT].sum()) if COUNT in data.columns else data.height


def resample_counts(counts: pl.DataFrame, rng: np.random.Generator, scheme: str, fraction: float) -> pl.DataFrame:
    """A resample of the log behind ``counts``, as counts: ``subsample`` draws
    ``fraction`` of the rows without replacement, ``bootstrap`` as many rows as the log with
    replacement; rows drawn zero times are dropped."""
    weights = counts[COUNT].to_numpy().astype(np.int64)
    n = int(weights.sum())
    if scheme == "bootstrap":
        drawn = rng.multinomial(n, weights / n)
    elif scheme == "subsample":
        drawn = rng.multivariate_hypergeometric(weights, max(2, int(round(fraction * n))), method="marginals")
    else:
        raise ValueError(f"unknown resampling {scheme!r}; choose 'subsample' or 'bootstrap'")
    return counts.with_columns(pl.Series(COUNT, drawn, dtype=pl.Int64)).filter(pl.col(COUNT) > 0)


def g_test(counts: pl.DataFrame, x: str, y: str, given: list[str]) -> tuple[float, int, float]:
    """The G-test (log-likelihood ratio) of ``x`` ⊥ ``y`` | ``given`` on a count table:
    statistic, degrees of freedom (per stratum of ``given``, its observed levels of x and y
    less one each, as pgmpy's ``GSq`` counts them) and p-value."""
    z = list(given)
    cell = counts.group_by([*z, x, y]).agg(pl.col(COUNT).sum().alias("o"))
    margins = [
        (z + [x], "n_zx"),
        (z + [y], "n_zy"),
    ]
    for keys, name in margins:
        cell = cell.join(cell.group_by(keys).agg(pl.col("o").sum().alias(name)), on=keys, how="left", nulls_equal=True)
    if z:
        cell = cell.join(cell.group_by(z).agg(pl.col("o").sum().alias("n_z")), on=z, how="left", nulls_equal=True)
    else:
        cell = cell.with_columns(pl.lit(cell["o"].sum()).alias("n_z"))
    o = cell["o"].cast(pl.Float64).to_numpy()
    ratio = o * cell["n_z"].to_numpy() / (cell["n_zx"].to_numpy() * cell["n_zy"].to_numpy())
    statistic = max(0.0, 2.0 * float(np.sum(o * np.log(ratio))))
    levels = cell.group_by(z or pl.lit(0)).agg(pl.col(x).n_unique().alias("r"), pl.col(y).n_unique().alias("c"))
    dof = int(((levels["r"] - 1).clip(0) * (levels["c"] - 1).clip(0)).sum())
    return statistic, dof, (float(chdtrc(dof, statistic)) if dof else float("nan"))
