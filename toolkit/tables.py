"""Row helpers every stage shares: which columns are attributes, which rows are training and
test data, and stable 64-bit hashes of ids (the same in every process, version and machine),
by which users are sharded and folded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl

__all__ = [
    "RESERVED_COLUMNS",
    "InProcess",
    "ShardMapper",
    "attribute_columns",
    "mix",
    "split_by_user",
    "stable_hash",
    "test_rows",
    "train_rows",
    "user_shards",
    "with_default_split",
]

# Columns of the canonical tables that are not attributes of a user or an item.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {"user_id", "item_id", "text", "exposure", "outcome", "timestamp", "split"}
)


def attribute_columns(frame: pl.DataFrame) -> list[str]:
    """The attribute columns of a users or items table (everything but ids and text)."""
    return [c for c in frame.columns if c not in RESERVED_COLUMNS]


def with_default_split(interactions: pl.DataFrame) -> pl.DataFrame:
    """Absent ``split`` means every row is training data."""
    if "split" in interactions.columns:
        return interactions
    return interactions.with_columns(pl.lit("train").alias("split"))


def train_rows(interactions: pl.DataFrame) -> pl.DataFrame:
    return with_default_split(interactions).filter(pl.col("split") == "train")


def test_rows(interactions: pl.DataFrame) -> pl.DataFrame:
    return with_default_split(interactions).filter(pl.col("split") == "test")


def stable_hash(values: pl.Series, salt: int = 0) -> np.ndarray:
    """A 64-bit hash of each value's text (md5: the same in every process, version and machine)."""
    digests = [hashlib.md5(f"{salt}:{v}".encode()).digest()[:8] for v in values.to_list()]
    return np.frombuffer(b"".join(digests), dtype=np.uint64).copy() if digests else np.zeros(0, dtype=np.uint64)


def user_shards(user_ids: pl.Series, shards: int) -> pl.Series:
    """Which of ``shards`` partitions each user belongs to: a hash of the id's text, stable
    across processes, versions and machines (unlike Python's or Polars' own hash)."""
    return pl.Series("_shard", (stable_hash(user_ids) % np.uint64(max(shards, 1))).astype(np.int64))


def split_by_user(frame: pl.DataFrame, shard_of: pl.DataFrame, shards: int) -> Iterator[pl.DataFrame]:
    """``frame``'s rows in ``shards`` parts by their user's shard (``shard_of``: ``user_id,
    _shard``), each part in ``frame``'s order, one part at a time (a part is copied when it is
    reached, so only one is in memory beside the frame); rows of users ``shard_of`` lacks go
    to shard 0."""
    tagged = frame.join(shard_of, on="user_id", how="left", maintain_order="left").select(
        pl.col("_shard").fill_null(0)
    )["_shard"]
    for s in range(shards):
        yield frame.filter(tagged == s)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit integers from any 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class ShardMapper(Protocol):
    """What sharded work needs of a compute engine: how many shards, and ``fn(part, *shared)``
    for each part in order (causalrec's ``ComputeResource`` has both, in process or on Dask)."""

    shard_count: int

    def map(self, fn: Callable[..., Any], parts: Iterable[Any], *shared: Any) -> Iterable[Any]: ...


@dataclass(frozen=True)
class InProcess:
    """The ``ShardMapper`` of a plain function call: one shard, every part here, in order."""

    shard_count: int = 1

    def map(self, fn: Callable[..., Any], parts: Iterable[Any], *shared: Any) -> Iterator[Any]:
        return (fn(part, *shared) for part in parts)
