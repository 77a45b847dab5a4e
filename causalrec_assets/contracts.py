"""The canonical data contract (docs/plugins.md, "ingest"): table names, required columns, allowed values,
and the ingest rules for legal but unusual data (README, "Data contract")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypeVar

import polars as pl

# re-exported: the contract's row rules, kept in the toolkit so that it needs no framework
from causalrec_toolkit.tables import RESERVED_COLUMNS as RESERVED_COLUMNS
from causalrec_toolkit.tables import attribute_columns as attribute_columns
from causalrec_toolkit.tables import test_rows as test_rows
from causalrec_toolkit.tables import train_rows as train_rows
from causalrec_toolkit.tables import with_default_split as with_default_split

TABLES: tuple[str, ...] = ("users", "items", "interactions")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id", "exposure", "outcome"),
}

KEY_COLUMNS: dict[str, str] = {"users": "user_id", "items": "item_id"}

SPLITS: tuple[str, ...] = ("train", "test")

class DataContractError(ValueError):
    """A dataset breaks the canonical contract; the message names table, column and sample."""


AnyFrame = pl.DataFrame | pl.LazyFrame
Table = TypeVar("Table", pl.DataFrame, pl.LazyFrame)  # a rule returns the kind of frame it was given


def collected(frame: AnyFrame) -> pl.DataFrame:
    """A table a plugin gave, in memory: a scan (plugin API 1.5) is collected, a frame returned as is."""
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def harmonise_id_types(users: AnyFrame, items: AnyFrame, interactions: AnyFrame) -> tuple[AnyFrame, AnyFrame, AnyFrame]:
    """Make ``user_id`` / ``item_id`` the same dtype in every table (eager or lazy).

    Ids keep their type when all tables agree (integers stay integers); otherwise all become
    strings, so joins never fail on a dtype mismatch.
    """
    for key, owner in (("user_id", "users"), ("item_id", "items")):
        tables = {"users": users, "items": items, "interactions": interactions}
        schemas = {name: t.collect_schema() for name, t in tables.items()}
        dtypes = {schema[key] for schema in schemas.values() if key in schema}
        if len(dtypes) > 1:
            if owner == "users":
                users = users.with_columns(pl.col(key).cast(pl.String))
            else:
                items = items.with_columns(pl.col(key).cast(pl.String))
            if key in schemas["interactions"]:
                interactions = interactions.with_columns(pl.col(key).cast(pl.String))
    return users, items, interactions


# Timestamps: a datetime (canonical: Datetime("us"), naive UTC), or a number of seconds since 1970;
# ISO-8601 text is parsed into the datetime at ingest. The validate stage refuses values outside
# [TIMESTAMP_MIN, TIMESTAMP_MAX): negative epochs, milliseconds taken for seconds, 9e18.
TIMESTAMP_MIN = datetime(1970, 1, 1)
TIMESTAMP_MAX = datetime(2200, 1, 1)
EPOCH_SECONDS_MAX = (TIMESTAMP_MAX - TIMESTAMP_MIN).total_seconds()

SAMPLE = 5  # bad values a message shows


class Log(Protocol):
    def info(self, msg: str, *args: Any) -> Any: ...
    def warning(self, msg: str, *args: Any) -> Any: ...


def check_reserved_columns(users: pl.DataFrame, items: pl.DataFrame) -> None:
    """Refuse attributes named like a canonical column: they would be dropped, not used."""
    allowed = {"users": {"user_id"}, "items": {"item_id", "text"}}
    for table, frame in (("users", users), ("items", items)):
        clash = sorted(set(frame.columns) & (RESERVED_COLUMNS - allowed[table]))
        if clash:
            names = ", ".join(f"{table}.{c}" for c in clash)
            raise DataContractError(
                f"{names}: reserved column name(s) of the canonical tables ({', '.join(sorted(RESERVED_COLUMNS))});"
                f" rename the attribute(s)"
            )


def parse_timestamps(interactions: Table, log: Log) -> Table:
    """ISO-8601 text timestamps become the canonical datetime; integers too wide for Arrow's
    pandas bridge (Int128) become floats, so the validate stage can report them as out of range.
    A lazy log stays lazy: the text is checked in one streaming pass."""
    schema = interactions.collect_schema()
    if "timestamp" not in schema:
        return interactions
    dtype, ts = schema["timestamp"], pl.col("timestamp")
    if dtype == pl.Int128 or dtype == pl.UInt128:
        return interactions.with_columns(ts.cast(pl.Float64))
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return interactions.with_columns(ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    if dtype != pl.String:
        return interactions
    # offsets converted to UTC, naive text read as UTC: one dtype however the text is written
    parsed = ts.str.strip_chars().str.to_datetime(time_unit="us", time_zone="UTC", strict=False, ambiguous="earliest")
    bad = parsed.is_null() & ts.is_not_null()
    lazy = interactions.lazy()
    n_bad, n_rows = lazy.select(bad.sum(), pl.len()).collect(engine="streaming").row(0)
    if n_bad:
        sample = lazy.filter(bad).select(ts).head(SAMPLE).collect()["timestamp"].to_list()
        raise DataContractError(
            f"interactions.timestamp: {n_bad} of {n_rows} row(s) are not ISO-8601 datetimes"
            f" (text timestamps must all be; numbers are seconds since 1970), e.g. {sample!r}"
        )
    log.info("interactions.timestamp: %d ISO-8601 text value(s) parsed as datetimes (UTC)", n_rows)
    return interactions.with_columns(parsed.dt.replace_time_zone(None).alias("timestamp"))


def cap_texts(items: pl.DataFrame, max_chars: int, log: Log) -> pl.DataFrame:
    """Cut item texts to ``max_chars`` characters: an encoder reads a few hundred tokens, and one
    huge cell must not take the embed step's memory with it."""
    if "text" not in items.columns or items.schema["text"] != pl.String:
        return items
    long = items.filter(pl.col("text").str.len_chars() > max_chars)
    if long.height:
        longest = int(long["text"].str.len_chars().max())  # type: ignore[arg-type]
        sample = long["item_id"].head(SAMPLE).to_list() if "item_id" in long.columns else []
        log.warning(
            "items.text: %d text(s) longer than %d characters (CAUSALREC_MAX_TEXT_CHARS) cut to it; longest %d,"
            " e.g. item_id %r",
            long.height,
            max_chars,
            longest,
            sample,
        )
        items = items.with_columns(pl.col("text").str.slice(0, max_chars))
    return items


def one_row_per_pair(interactions: Table, log: Log) -> Table:
    """Rows repeating a (user_id, item_id) within a split keep only the latest one (by
    ``timestamp``, else the last in file order), with a warning naming how many and a sample.
    A lazy log is searched for repeats in one streaming pass and collected only if it has some."""
    keys = [c for c in ("user_id", "item_id", "split") if c in interactions.collect_schema()]
    if not {"user_id", "item_id"} <= set(keys):
        return interactions
    if isinstance(interactions, pl.LazyFrame):
        counts = interactions.group_by(keys).len().filter(pl.col("len") > 1).select(pl.len())
        if not counts.collect(engine="streaming").item():
            return interactions
        return one_row_per_pair(interactions.collect(), log).lazy()
    if interactions.is_empty():
        return interactions
    repeated = interactions.select(pl.struct(keys).is_duplicated()).to_series()
    if not repeated.any():
        return interactions
    rows = interactions.with_row_index("_row")
    dupes = rows.filter(repeated)
    values = [c for c in ("exposure", "outcome") if c in interactions.columns]
    pairs = dupes.group_by(keys, maintain_order=True).agg(
        pl.len().alias("rows"), *(pl.col(c).n_unique().alias(f"_{c}") for c in values), pl.col(values)
    )
    contradictory = pairs.filter(pl.any_horizontal(pl.col(f"_{c}") > 1 for c in values)) if values else pairs.head(0)
    shown = (contradictory if contradictory.height else pairs).head(SAMPLE)
    sample = [{**{k: r[k] for k in keys}, **{c: r[c] for c in values}} for r in shown.iter_rows(named=True)]
    order = (["timestamp"] if "timestamp" in interactions.columns else []) + ["_row"]
    kept = rows.sort(order, nulls_last=False).unique(subset=keys, keep="last").sort("_row").drop("_row")
    log.warning(
        "interactions: %d row(s) repeat one of %d (user_id, item_id%s) pair(s), %d with contradictory"
        " exposure or outcome; kept the latest row of each (by timestamp, else file order), dropped %d; e.g. %r",
        dupes.height,
        pairs.height,
        ", split" if "split" in keys else "",
        contradictory.height,
        interactions.height - kept.height,
        sample,
    )
    return kept
