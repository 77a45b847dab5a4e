"""The canonical data contract (docs/plugins.md, "ingest"): table names, required columns, allowed values."""

from __future__ import annotations

import polars as pl

TABLES: tuple[str, ...] = ("users", "items", "interactions")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id", "exposure", "outcome"),
}

KEY_COLUMNS: dict[str, str] = {"users": "user_id", "items": "item_id"}

SPLITS: tuple[str, ...] = ("train", "test")

# Columns of the canonical tables that are not attributes of a user or an item.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {"user_id", "item_id", "text", "exposure", "outcome", "timestamp", "split"}
)


class DataContractError(ValueError):
    """A dataset breaks the canonical contract; the message names table, column and sample."""


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


def harmonise_id_types(users: pl.DataFrame, items: pl.DataFrame, interactions: pl.DataFrame):
    """Make ``user_id`` / ``item_id`` the same dtype in every table.

    Ids keep their type when all tables agree (integers stay integers); otherwise all become
    strings, so joins never fail on a dtype mismatch.
    """
    for key, owner in (("user_id", "users"), ("item_id", "items")):
        tables = {"users": users, "items": items, "interactions": interactions}
        dtypes = {t.schema[key] for name, t in tables.items() if key in t.columns}
        if len(dtypes) > 1:
            if owner == "users":
                users = users.with_columns(pl.col(key).cast(pl.String))
            else:
                items = items.with_columns(pl.col(key).cast(pl.String))
            if key in interactions.columns:
                interactions = interactions.with_columns(pl.col(key).cast(pl.String))
    return users, items, interactions
