"""The effects stage's conformance checks: ``estimate()`` returns rows of ``EFFECT_COLUMNS`` whose
first ``ATE`` row is a finite headline effect, NaN where the effect cannot be identified."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import polars as pl

from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.kit_frames import (
    FLOAT,
    STRING,
    check_frame,
    check_no_nulls,
    expect_error,
    fail,
    frame_difference,
)
from causalrec_toolkit.variables import OUTCOME, TREATMENT

STAGE = "effects"

LABELS = EFFECT_COLUMNS[:4]  # treatment, outcome, estimand, estimator
DTYPES = {**dict.fromkeys(LABELS, STRING), **dict.fromkeys(EFFECT_COLUMNS[4:], FLOAT)}


def estimate(kit: Kit, inputs: EffectInputs, what: str) -> Any:
    plugin = kit.make()
    return kit.call(what, lambda: plugin.estimate(inputs, kit.context()))


def run(kit: Kit) -> Any:
    return estimate(kit, kit.inputs.effect_inputs(), "estimate()")


same = frame_difference


def headline(frame: Any, what: str, dtypes: bool = False) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The table, checked to have the effect columns (and dtypes), and its first ATE row."""
    frame = check_frame(frame, what, EFFECT_COLUMNS, dtypes=DTYPES if dtypes else None)
    ate = frame.filter(pl.col("estimand") == "ATE")
    if ate.is_empty():
        fail(f"{what} has no row with estimand 'ATE' (the first one is the headline)")
    return frame, ate.row(0, named=True)


def check_output_schema(kit: Kit) -> str:
    frame, _ = headline(kit.main_or_fail(), "estimate()")
    return f"{frame.height} rows"


def check_dtypes(kit: Kit) -> str:
    headline(kit.main_or_fail(), "estimate()", dtypes=True)
    return ""


def check_row_invariants(kit: Kit) -> str:
    frame, head = headline(kit.main_or_fail(), "estimate()")
    check_no_nulls(frame, "estimate()", LABELS)
    for col, want in (("treatment", TREATMENT), ("outcome", OUTCOME)):
        odd = set(frame[col].to_list()) - {want}
        if odd:
            fail(f"every row's {col} must be {want!r} (the input's), found {sorted(odd)}")
    value = head["estimate"]
    if not (value is not None and np.isfinite(value) and -1 <= value <= 1):
        fail(f"the headline ATE ({head['estimator']}) must be a finite effect in [-1, 1] on 0/1 outcomes, got {value}")
    both = frame.filter(pl.col("ci_low").is_not_nan() & pl.col("ci_high").is_not_nan())
    inverted = both.filter(pl.col("ci_low") > pl.col("ci_high"))
    if inverted.height:
        fail(f"ci_low > ci_high in {inverted.height} row(s), e.g. {inverted.row(0, named=True)}")
    return f"headline {head['estimator']} = {value:.4f}"


def check_not_identifiable(kit: Kit, inputs: EffectInputs, what: str) -> None:
    _, head = headline(estimate(kit, inputs, what), what)
    if head["estimate"] is not None and not np.isnan(head["estimate"]):
        fail(f"{what}: the effect is not identifiable, so the headline estimate must be NaN, got {head['estimate']}")


def check_empty_input(kit: Kit) -> str:
    base = kit.inputs.effect_inputs()
    check_not_identifiable(kit, base.take(np.arange(0)), "estimate() on no rows")
    treated = np.flatnonzero((base.variables[TREATMENT] == "1").to_numpy())
    check_not_identifiable(kit, base.take(treated), "estimate() where every row is treated")
    return "not identifiable: NaN headline"


def check_malformed_input(kit: Kit) -> str:
    base = kit.inputs.effect_inputs()
    features = base.features
    if features is not None:
        features = dataclasses.replace(features, frame=features.frame.drop(OUTCOME))
    broken = dataclasses.replace(base, variables=base.variables.drop(OUTCOME), network=None, features=features)
    plugin = kit.make()
    what = "estimate() on a table without the outcome column"
    return expect_error(what, lambda: plugin.estimate(broken, kit.context()), [OUTCOME])
