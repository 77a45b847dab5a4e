"""The conformance kit's results and its checks of frames: what a check returns or raises, and
the schema, dtype and null checks every stage's checks use."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import polars as pl

# ------------------------------------------------------------------ results


@dataclass
class CheckResult:
    """One check's verdict on one plugin."""

    name: str
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""

    def line(self) -> str:
        mark = {"passed": "ok     ", "failed": "FAILED ", "skipped": "skipped"}[self.status]
        return f"  {mark} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class ConformanceReport:
    """The verdict of every check run on one plugin with one configuration and seed."""

    plugin: str
    stage: str
    seed: int
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    def describe(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("passed", "failed", "skipped")}
        head = (
            f"conformance of {self.stage} plugin {self.plugin} (seed {self.seed}): "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        )
        return "\n".join([head, *(r.line() for r in self.results)])


class ConformanceError(AssertionError):
    """A plugin broke its stage's contract; the message is the report."""

    def __init__(self, report: ConformanceReport) -> None:
        super().__init__(report.describe())
        self.report = report


class CheckFailed(AssertionError):
    """Raised by a check: the contract is broken, and the message says how."""


class CheckSkipped(Exception):
    """Raised by a check that does not apply to this plugin; the message says why."""


class PluginRaised(Exception):
    """The plugin raised where the contract says it must not; wraps the plugin's exception."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} raised {describe_exception(exc)}")
        self.original = exc


def describe_exception(exc: BaseException) -> str:
    """``TypeError: message (at file.py:12 in rank)``: where the plugin's code failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}{where}"


def fail(message: str) -> NoReturn:
    """End the check as failed, saying how the contract is broken."""
    raise CheckFailed(message)


def expect_error(what: str, func: Callable[[], Any], names: Sequence[str]) -> str:
    """The plugin must refuse an unusable input: ``func`` raises an error whose message holds
    one of ``names`` (what is wrong). Returns the error, described."""
    try:
        result = func()
    except Exception as exc:
        if not any(n in str(exc) for n in names):
            fail(f"{what} raised without naming {names[0]}: {describe_exception(exc)}")
        return describe_exception(exc)
    fail(f"{what} returned {type(result).__name__} instead of raising an error that names the problem")


# ------------------------------------------------------------------ frames


@dataclass(frozen=True)
class Dtype:
    """What a column's dtype must be: a test, and the words a failure says it with."""

    words: str
    accepts: Callable[[Any], bool]


STRING = Dtype("strings", lambda d: d == pl.String)
FLOAT = Dtype("floats", lambda d: d.is_float())
INTEGER = Dtype("integers", lambda d: d.is_integer())


def same_dtype(dtype: Any) -> Dtype:
    """The column must have exactly ``dtype``, the input's (ids keep their type downstream)."""
    return Dtype(f"the input's dtype ({dtype})", lambda d: d == dtype)


def check_frame(
    frame: Any,
    what: str,
    columns: Sequence[str],
    *,
    exact: bool = True,
    dtypes: Mapping[str, Dtype] | None = None,
) -> pl.DataFrame:
    """Fail unless ``frame`` is a polars DataFrame with ``columns`` (exactly these, in this order;
    or at least these, when not ``exact``) and, for the columns ``dtypes`` names that it has,
    those dtypes. The one schema test of every stage's output."""
    if not isinstance(frame, pl.DataFrame):
        fail(f"{what} must be a polars DataFrame, got {type(frame).__name__}")
    if exact and frame.columns != list(columns):
        fail(f"{what} must have columns {list(columns)}, got {frame.columns}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        fail(f"{what} lacks required column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
    for col, want in (dtypes or {}).items():
        if col in frame.columns and not want.accepts(frame.schema[col]):
            fail(f"{what}.{col} must be {want.words}, got {frame.schema[col]}")
    return frame


def check_no_nulls(frame: pl.DataFrame, what: str, columns: Sequence[str]) -> None:
    """Fail when one of ``columns`` holds a null."""
    for col in columns:
        if frame[col].null_count():
            fail(f"{what}.{col} has {frame[col].null_count()} null(s)")


def frame_difference(a: Any, b: Any) -> str | None:
    """Where two outputs differ (None when they agree; floats up to rounding), for determinism."""
    if not (isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame)):
        return None if a == b else "the outputs"
    if a.schema != b.schema or a.height != b.height:
        return f"shape or schema ({a.shape} {dict(a.schema)} vs {b.shape} {dict(b.schema)})"
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.is_float():
            # Summation order may differ between runs (parallel group-bys): allow rounding, not more.
            if not np.allclose(x.to_numpy(), y.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True):
                return f"column {col}"
        elif not x.equals(y):
            return f"column {col}"
    return None


def unused_id(ids: pl.Series, stem: str) -> Any:
    """An id of the same kind as ``ids`` that none of them is (a newcomer, an unknown item)."""
    if ids.dtype.is_integer():
        return int(ids.max() or 0) + 1_000_000  # type: ignore[arg-type]
    return f"kit-{stem}"


