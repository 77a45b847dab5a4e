"""Discrete data as integer codes, counted with NumPy instead of per-row Python or pandas.

Every learner works on a ``CodedTable``: one ``int64`` code column per variable and its
cardinality. Making one is also where awkward columns are dealt with and reported instead of
crashed on: missing values become their own ``missing`` state, a column with a single value
is kept as an isolated node, and a column with hundreds of levels keeps its most frequent
levels and lumps the rest into ``other`` (a CPD over hundreds of states cannot be estimated).

A table may be a count table: the distinct rows with how often each occurs (the structure
stage's ``COUNT`` column, ``weights`` here). Every count is then a weighted ``np.bincount``, so
a 4-million-row log of nine discrete variables is learned from a few thousand rows, and a
bootstrap is a reweighting of the counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

MISSING = "missing"
OTHER = "other"


@dataclass
class CodedTable:
    """Integer codes (rows × variables), the states behind the codes, and what was done to
    make them (``report``: variable → what happened to it)."""

    names: list[str]
    codes: np.ndarray  # shape (n_rows, n_vars), int64, codes in 0..card-1, column-major
    states: list[list[str]]
    report: dict[str, str] = field(default_factory=dict)
    weights: np.ndarray | None = None  # how many rows each row stands for (None: one each)

    def __post_init__(self) -> None:
        self.codes = np.asfortranarray(self.codes, dtype=np.int64)  # a column is contiguous: fast counting
        if self.weights is not None:
            self.weights = np.asarray(self.weights, dtype=np.float64)

    @property
    def n(self) -> int:
        """Rows of the data (the sum of the counts of a count table)."""
        return int(self.codes.shape[0]) if self.weights is None else int(round(float(self.weights.sum())))

    def count(self, index: np.ndarray, size: int) -> np.ndarray:
        """How many rows fall in each of ``size`` cells, ``index`` giving each row's cell."""
        return np.bincount(index, weights=self.weights, minlength=size)

    @property
    def cards(self) -> np.ndarray:
        return np.array([len(s) for s in self.states], dtype=np.int64)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def constant(self) -> list[str]:
        """Variables with a single observed state: nothing can depend on them in the data."""
        return [n for n, s in zip(self.names, self.states, strict=True) if len(s) <= 1]

    def select(self, names: list[str]) -> CodedTable:
        """The table restricted to ``names`` (in that order)."""
        cols = [self.index(n) for n in names]
        return CodedTable(
            list(names), self.codes[:, cols], [self.states[j] for j in cols], dict(self.report), self.weights
        )

    def resample(self, rng: np.random.Generator) -> CodedTable:
        """A bootstrap resample of the rows (same states, so codes stay comparable); of a count
        table, multinomial counts over its rows."""
        if self.weights is not None:
            drawn = rng.multinomial(self.n, self.weights / self.weights.sum()).astype(np.float64)
            keep = drawn > 0
            return CodedTable(self.names, self.codes[keep], self.states, dict(self.report), drawn[keep])
        rows = rng.integers(0, self.n, size=self.n)
        return CodedTable(self.names, self.codes[rows], self.states, dict(self.report))

    def to_pandas(self) -> pd.DataFrame:
        """Categorical columns (pgmpy treats integer codes as continuous unless told otherwise)."""
        return pd.DataFrame(
            {
                name: pd.Categorical.from_codes(self.codes[:, j], categories=self.states[j])
                for j, name in enumerate(self.names)
            }
        )


def coded_table(data: pl.DataFrame | pd.DataFrame, max_levels: int = 50, count: str | None = None) -> CodedTable:
    """Code every column of ``data`` as a discrete variable (see module docstring); a column
    named ``count``, when given and present, holds each row's count (a count table)."""
    frame = data if isinstance(data, pl.DataFrame) else pl.from_pandas(_stringify_pandas(data))
    weights = None
    if count is not None and count in frame.columns:
        weights = frame[count].cast(pl.Float64).to_numpy()
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError(f"the {count!r} column of a count table holds negative or missing counts")
        frame = frame.drop(count)
    if frame.width == 0:
        raise ValueError("structure learning needs at least one variable; the table has no columns")
    if len(set(frame.columns)) != frame.width:
        raise ValueError(f"duplicate variable names: {frame.columns}")
    rows = frame.height if weights is None else int(weights.sum())
    if rows < 2:
        raise ValueError(f"structure learning needs at least 2 rows (samples), got {rows}")
    report: dict[str, str] = {}
    columns, states = [], []
    for name in frame.columns:
        values = frame[name].cast(pl.String)
        nulls = values.null_count()
        if nulls:
            report[name] = f"{nulls} missing value(s) kept as the state {MISSING!r}"
            values = values.fill_null(MISSING)
        counts = values.value_counts(sort=True, name="_n")
        levels = counts[name].to_list()
        if len(levels) > max_levels:
            keep = levels[: max_levels - 1]
            lumped = len(levels) - len(keep)
            values = pl.select(
                pl.when(values.is_in(keep)).then(values).otherwise(pl.lit(OTHER)).alias(name)
            ).to_series()
            note = f"{len(levels)} levels: kept the {len(keep)} most frequent, lumped {lumped} into {OTHER!r}"
            report[name] = f"{report[name]}; {note}" if name in report else note
            levels = sorted(set(keep) | {OTHER})
        else:
            levels = sorted(levels)
        if len(levels) <= 1:
            note = "a single value: kept as an isolated variable"
            report[name] = f"{report[name]}; {note}" if name in report else note
        lookup = pl.DataFrame({name: levels, "_code": np.arange(len(levels), dtype=np.int64)})
        code = values.to_frame().join(lookup, on=name, how="left", maintain_order="left")["_code"].to_numpy()
        columns.append(code.astype(np.int64))
        states.append([str(s) for s in levels])
    codes = np.column_stack(columns) if columns else np.zeros((frame.height, 0), dtype=np.int64)
    return CodedTable(list(frame.columns), codes, states, report, weights)


def _stringify_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
        out[col] = out[col].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    out.columns = [str(c) for c in out.columns]
    return out


def joint_index(codes: np.ndarray, cards: np.ndarray, columns: list[int]) -> tuple[np.ndarray, int]:
    """A single code per row for the joint state of ``columns`` and the number of joint states."""
    index = np.zeros(codes.shape[0], dtype=np.int64)
    size = 1
    for j in columns:
        if size * int(cards[j]) > 2**53:  # re-number the observed states so the index cannot overflow
            _, index = np.unique(index, return_inverse=True)
            size = int(index.max()) + 1
        index = index * cards[j] + codes[:, j]
        size *= int(cards[j])
    return index, size


def compact(index: np.ndarray, size: int, cells_per_state: int = 1) -> tuple[np.ndarray, int]:
    """Re-number a joint index to its observed states when a dense table over all ``size``
    states (times ``cells_per_state``) would be much larger than the data."""
    if size * cells_per_state <= max(4 * index.shape[0], 65_536):
        return index, size
    _, inverse = np.unique(index, return_inverse=True)
    return inverse.reshape(-1), int(inverse.max()) + 1 if inverse.size else 0


def contingency(table: CodedTable, child: int, parents: list[int]) -> np.ndarray:
    """Counts N[j, k] of ``child`` state k under each *observed* parent configuration j."""
    codes, cards = table.codes, table.cards
    r = int(cards[child])
    pa_index, q = joint_index(codes, cards, parents)
    pa_index, q = compact(pa_index, q, r)
    counts = table.count(pa_index * r + codes[:, child], q * r).reshape(q, r)
    return counts[counts.sum(axis=1) > 0]
