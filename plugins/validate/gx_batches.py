"""Great Expectations on a large table in bounded memory.

Converting a whole 5-million-row log to one pandas frame costs gigabytes, so the suite runs on
consecutive row batches, each converted to pandas in turn, and the per-batch results are merged.
Row-wise ("map") expectations judge each row alone, so their merge is exact: bad-row counts add
up, the sample is the first bad values in row order, and the expectation holds if it holds in
every batch. An aggregate over the whole table (row count, key uniqueness, distinct count, max)
cannot be decided per batch: a key duplicated across two batches is unique in each. For those,
Polars finds the rows that decide the metric, and GX judges a small frame of them whose metric
equals the whole table's. The referential checks (``user_id`` in every user id) are row-wise, but
GX 1.x spends ~9 s per 100,000 listed values on every run whatever the rows, so they are judged
once per table, on the rows Polars finds outside the set (their bad rows, count and sample are the
table's). Every frame reaches pandas with the dtypes the whole table would get (an int column with
a null anywhere is float64 in every batch), so values and samples read as when validated at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

BATCH_ROWS = 1_000_000  # rows per pandas batch: ~50 MB of pandas for the canonical log's columns
MIN_BATCH_ROWS = 100
LARGE_VALUE_SET = 1_000  # an in-set check listing more values is judged once, on the rows outside it
INDEX = "causalrec_index"  # meta key that ties a GX result to the expectation it judged

TRAIN_ROWS = 'split=="train"'  # the suite's one row condition (pandas query syntax)
# each row condition of the suite, as the Polars filter that selects the same rows
ROW_CONDITIONS: dict[str, pl.Expr] = {TRAIN_ROWS: pl.col("split") == "train"}

NO_COLUMN = object()  # GX's group of the expectations on no column
GxFrame = Any  # a pandas DataFrame, or a Polars one still to convert

# ------------------------------------------------------------------ verdicts and their merge


@dataclass
class Verdict:
    """One expectation's GX result on one frame, or merged over several frames."""

    success: bool
    unexpected_count: int = 0
    partial: list[Any] = field(default_factory=list)  # the first bad values, in row order
    observed: tuple[Any, ...] = ()  # (GX's observed_value,) when it reported one
    error: str = ""  # GX's exception message, if the expectation raised


def plain(value: Any) -> Any:
    """A value as a plain Python object (numpy scalars unwrapped, NaN shown as None)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def verdict_of(result: Any) -> tuple[int, Verdict]:
    """A GX ExpectationValidationResult as (index of its expectation, Verdict)."""
    info = result.result or {}
    raised = (result.exception_info or {}).get("raised_exception")
    verdict = Verdict(
        success=bool(result.success),
        unexpected_count=int(info.get("unexpected_count") or 0),
        partial=[plain(v) for v in info.get("partial_unexpected_list") or []],
        observed=(plain(info["observed_value"]),) if "observed_value" in info else (),
        error=str(result.exception_info.get("exception_message")) if raised else "",
    )
    return int(result.expectation_config.meta[INDEX]), verdict


def merge(verdicts: Sequence[Verdict], pool: int) -> Verdict:
    """The verdicts of frames that split the judged rows between them, as one verdict on all of
    them: fails if any fails (its observed value and error shown), counts add up, and the sample
    is the first ``pool`` bad values in frame order, as GX would keep on one frame."""
    if not verdicts:
        raise RuntimeError("Great Expectations returned no result for an expectation")
    failing = [v for v in verdicts if not v.success]
    first = failing[0] if failing else verdicts[0]
    return Verdict(
        success=not failing,
        unexpected_count=sum(v.unexpected_count for v in verdicts),
        partial=list(chain.from_iterable(v.partial for v in verdicts))[:pool],
        observed=first.observed,
        error=first.error,
    )


# ------------------------------------------------------------------ frames handed to GX


def row_batches(frame: pl.DataFrame, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Consecutive slices of at most ``batch_rows`` rows (zero-copy); an empty table is one
    empty slice, so GX still judges it."""
    for start in range(0, max(frame.height, 1), batch_rows):
        yield frame.slice(start, batch_rows)


def pandas_dtypes(frame: pl.DataFrame) -> dict[str, Any]:
    """The dtype each column gets in ``frame.to_pandas()``. It depends on whether the column has a
    null anywhere (ints become float64, booleans object), so a batch without one must follow."""
    head = frame.head(1)
    with_null = pl.concat([head, frame.clear(1)]).to_pandas().dtypes
    without = head.to_pandas().dtypes
    nulls = frame.null_count().row(0) if frame.width else ()
    return {c: with_null[c] if n else without[c] for c, n in zip(frame.columns, nulls, strict=True)}


def to_gx(frame: GxFrame, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """``frame`` as pandas with the whole table's dtypes (a pandas frame passes through)."""
    if not isinstance(frame, pl.DataFrame):
        return frame
    pdf = frame.to_pandas()
    for column, dtype in dtypes.items():
        if column in pdf.columns and pdf[column].dtype != dtype:
            pdf[column] = pdf[column].astype(dtype)
    return pdf


# ------------------------------------------------------------------ aggregates: the deciding rows


def condition(expectation: gxe.Expectation) -> pl.Expr | None:
    """The Polars filter of the expectation's row condition (None: every row)."""
    cond = getattr(expectation, "row_condition", None)
    if cond is None:
        return None
    text = getattr(cond, "pass_through_filter", cond)
    if text not in ROW_CONDITIONS:
        raise ValueError(f"no Polars form of the row condition {text!r} ({expectation.expectation_type})")
    return ROW_CONDITIONS[text]


def judged_rows(expectation: gxe.Expectation, frame: pl.DataFrame) -> pl.LazyFrame:
    """The rows and columns the expectation reads: its column, its condition's columns (kept so
    that GX applies the same condition to the small frame), on the rows the condition selects."""
    cond = condition(expectation)
    column = expectation.column  # type: ignore[attr-defined]
    rows = frame.lazy()
    if cond is None:
        return rows.select(column)
    keep = [column, *(c for c in cond.meta.root_names() if c != column)]
    return rows.filter(cond).select(keep)


def present(column: str, dtype: pl.DataType) -> pl.Expr:
    """Values GX's map and distinct metrics count: pandas drops nulls and NaN before judging."""
    expr = pl.col(column).is_not_null()
    return expr & pl.col(column).is_not_nan() if dtype.is_float() else expr


def table_height(expectation: gxe.Expectation, frame: pl.DataFrame, batch_rows: int) -> Iterator[GxFrame]:
    """A pandas frame of the table's height and no columns: GX counts exactly the table's rows,
    and a RangeIndex holds no data."""
    import pandas as pd

    yield pd.DataFrame(index=pd.RangeIndex(frame.height))


def duplicated_keys(expectation: gxe.Expectation, frame: pl.DataFrame, batch_rows: int) -> Iterator[GxFrame]:
    """The rows whose value occurs more than once: on them GX finds every duplicate of the table
    (its count is theirs), and they are its only bad rows."""
    column = expectation.column  # type: ignore[attr-defined]
    rows = judged_rows(expectation, frame).filter(present(column, frame.schema[column])).collect()
    yield from key_batches(rows.filter(pl.col(column).is_duplicated()), column, batch_rows)


def key_batches(rows: pl.DataFrame, column: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    """``rows`` (all duplicates) in batches GX judges alone: in row order when they fit in one,
    so the sample is the table's; else grouped by value (in order of first occurrence), with each
    value's rows split into pieces of at least two, so every row stays a duplicate in its batch."""
    if rows.height <= batch_rows:
        yield rows
        return
    first_row = pl.col("_row").min().over(column)
    grouped = rows.with_row_index("_row").sort(first_row, maintain_order=True).drop("_row")
    values = grouped.get_column(column)
    start = 0
    while start < grouped.height:
        end = min(start + batch_rows, grouped.height)
        if end < grouped.height and values[end - 1] == values[end]:
            if end + 1 == grouped.height or values[end + 1] != values[end]:
                end += 1  # one row of the value would be left for the next batch: keep it here
            elif end - 1 == start or values[end - 2] != values[end - 1]:
                end -= 1  # one row of the value would stay in this batch: move it to the next
        yield grouped.slice(start, end - start)
        start = end


def distinct_values(expectation: gxe.Expectation, frame: pl.DataFrame, batch_rows: int) -> Iterator[GxFrame]:
    """One row per distinct value (its first): GX counts as many distinct values as the table has."""
    column = expectation.column  # type: ignore[attr-defined]
    rows = judged_rows(expectation, frame).filter(present(column, frame.schema[column]))
    yield rows.unique(subset=column, keep="first", maintain_order=True).collect()


def max_row(expectation: gxe.Expectation, frame: pl.DataFrame, batch_rows: int) -> Iterator[GxFrame]:
    """A row holding the column's maximum (nulls and NaN skipped, as pandas does); a row of the
    column's nulls when it has no value, none when no row is judged."""
    column = expectation.column  # type: ignore[attr-defined]
    rows = judged_rows(expectation, frame)
    top = rows.filter(pl.col(column) == pl.col(column).max()).head(1).collect()
    yield top if top.height else rows.head(1).collect()


def outside_set(expectation: gxe.Expectation, frame: pl.DataFrame, batch_rows: int) -> Iterator[GxFrame]:
    """The rows whose value Polars does not find in the value set, in row order: GX judges them
    against the whole set, so its bad rows, count and sample are the table's. Where Polars cannot
    compare the column with the set exactly (other types), every row goes to GX, in batches."""
    column = expectation.column  # type: ignore[attr-defined]
    dtype = frame.schema[column]
    rows = judged_rows(expectation, frame).filter(present(column, dtype))
    known = comparable_set(expectation.value_set, dtype)  # type: ignore[attr-defined]
    if known is not None:
        rows = rows.filter(~pl.col(column).is_in(known.implode()))
    yield from row_batches(rows.collect(), batch_rows)


def comparable_set(values: Any, dtype: pl.DataType) -> pl.Series | None:
    """``values`` as a Series of ``dtype`` that Polars compares as pandas would: their own type
    is ``dtype``, or both are integers (a cast out of range gives null, which matches nothing).
    None otherwise: mixed types, or numbers pandas would compare across int and float."""
    try:
        known = pl.Series(list(values), strict=True)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return None
    if known.dtype == dtype or (known.dtype.is_integer() and dtype.is_integer()):
        return known.cast(dtype, strict=False).drop_nulls()
    return None


Reducer = Callable[["gxe.Expectation", pl.DataFrame, int], Iterator[GxFrame]]

# the aggregates of the suite: the frames on which GX decides each exactly as on the whole table
AGGREGATES: dict[str, Reducer] = {
    "expect_table_row_count_to_be_between": table_height,
    "expect_column_values_to_be_unique": duplicated_keys,
    "expect_column_unique_value_count_to_be_between": distinct_values,
    "expect_column_max_to_be_between": max_row,
}


def reducer(expectation: gxe.Expectation) -> Reducer | None:
    """What GX judges the expectation on: None for every row batch, where the verdicts merge
    exactly (a map expectation, unless it has ``mostly``: a share of a batch is not a share of the
    table; a column's existence, the same in every batch); else the function yielding the frames
    that decide it."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import ColumnMapExpectation

    kind = expectation.expectation_type
    if kind in AGGREGATES:
        return AGGREGATES[kind]
    if isinstance(expectation, gxe.ExpectColumnValuesToBeInSet) and len(expectation.value_set) > LARGE_VALUE_SET:  # type: ignore[arg-type]
        return outside_set
    if isinstance(expectation, gxe.ExpectColumnToExist):
        return None
    if isinstance(expectation, ColumnMapExpectation) and getattr(expectation, "mostly", 1) == 1:
        return None
    raise ValueError(f"{kind} cannot be validated in batches: add it to AGGREGATES")


# ------------------------------------------------------------------ running GX


def tagged_suite(expectations: Mapping[int, gxe.Expectation]) -> gx.ExpectationSuite:
    """A suite of copies of ``expectations``, each tagged with its index to find its result."""
    import great_expectations as gx

    copies = [e.copy(update={"meta": {**(e.meta or {}), INDEX: i}}) for i, e in expectations.items()]
    return gx.ExpectationSuite(name="causalrec.batch", expectations=copies)


def judge(definition: Any, suite: gx.ExpectationSuite, frame: pd.DataFrame, pool: int) -> dict[int, Verdict]:
    """GX's verdicts on one pandas frame, by expectation index; ``pool`` bad values kept each."""
    batch = definition.get_batch(batch_parameters={"dataframe": frame})
    report = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": pool})
    return dict(verdict_of(r) for r in report.results)


def validate_frame(
    definition: Any, expectations: Sequence[gxe.Expectation], frame: pl.DataFrame, batch_rows: int, pool: int
) -> list[tuple[gxe.Expectation, Verdict]]:
    """Each expectation with its verdict on ``frame``, as GX gives them on the whole frame at once,
    with at most ``batch_rows`` of its rows in pandas at a time (an aggregate's small frame holds
    one or two columns, of at most one row per distinct value)."""
    dtypes = pandas_dtypes(frame)
    found: dict[int, list[Verdict]] = {i: [] for i in range(len(expectations))}
    decided = {i: reducer(e) for i, e in enumerate(expectations)}
    row_wise = {i: e for i, e in enumerate(expectations) if decided[i] is None}
    if row_wise:
        suite = tagged_suite(row_wise)
        for batch in row_batches(frame, batch_rows):
            for i, verdict in judge(definition, suite, to_gx(batch, dtypes), pool).items():
                found[i].append(verdict)
    for i, reduce in decided.items():
        if reduce is not None:
            suite = tagged_suite({i: expectations[i]})
            for small in reduce(expectations[i], frame, batch_rows):
                found[i] += judge(definition, suite, to_gx(small, dtypes), pool).values()
    verdicts = [merge(found[i], pool) for i in range(len(expectations))]
    return [(expectations[i], verdicts[i]) for i in gx_order(expectations, verdicts)]


def gx_order(expectations: Sequence[gxe.Expectation], verdicts: Sequence[Verdict]) -> list[int]:
    """The order GX 1.x reports results in on one frame: those that raised first, then grouped by
    column in order of first appearance (``Validator.process_expectations_for_validation``)."""
    groups: dict[Any, list[int]] = {}
    for i, expectation in enumerate(expectations):
        column = getattr(expectation, "column", None)
        groups.setdefault(column if isinstance(column, str) else NO_COLUMN, []).append(i)
    order = list(chain.from_iterable(groups.values()))
    return sorted(order, key=lambda i: not verdicts[i].error)
