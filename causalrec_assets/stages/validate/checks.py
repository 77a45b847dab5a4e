"""The validate stage's conformance checks: a ``ValidationOutcome`` per table that passes valid
data and reports each defect, naming its column.

The tables are handed over as the stage's blocking checks hand them: the users and items checks
see their own table only, the interactions check sees all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.kit_frames import fail
from causalrec_assets.stages.validate.protocol import ExpectationOutcome, ValidationOutcome

STAGE = "validate"

TABLES = ("users", "items", "interactions")


def world_tables(kit: Kit) -> dict[str, pl.DataFrame]:
    w = kit.world
    return {"users": w.users, "items": w.items, "interactions": w.interactions}


def validate(kit: Kit, plugin: Any, table: str, tables: Mapping[str, pl.DataFrame], what: str) -> Any:
    """``plugin.validate`` of ``table``, seeing what the stage lets that table's check see."""
    visible = dict(tables) if table == "interactions" else {table: tables[table]}
    ctx = kit.context()
    return kit.call(what, lambda: plugin.validate(table, visible[table], visible, ctx))


def validate_all(kit: Kit, tables: Mapping[str, pl.DataFrame]) -> dict[str, Any]:
    plugin = kit.make()
    return {t: validate(kit, plugin, t, tables, f"validate({t!r})") for t in TABLES}


def run(kit: Kit) -> dict[str, Any]:
    return validate_all(kit, world_tables(kit))


def verdicts(outcome: ValidationOutcome) -> list[tuple]:
    return [(r.expectation, r.column, r.success, r.unexpected_count) for r in outcome.results]


def same(a: dict[str, ValidationOutcome], b: dict[str, ValidationOutcome]) -> str | None:
    for t in a:
        if verdicts(a[t]) != verdicts(b[t]):
            return f"the verdicts on {t}"
    return None


def check_outcome(table: str, outcome: Any, frame: pl.DataFrame | None = None) -> ValidationOutcome:
    """Fail unless ``outcome`` is a ValidationOutcome of ``table`` with results (and, given the
    frame, the frame's row count)."""
    if not isinstance(outcome, ValidationOutcome):
        fail(f"validate({table!r}) must return ValidationOutcome, got {type(outcome).__name__}")
    if frame is None:
        return outcome
    if outcome.table != table:
        fail(f"validate({table!r}) returned an outcome for table {outcome.table!r}")
    if not outcome.results:
        fail(f"validate({table!r}) returned no expectation results")
    if outcome.row_count != frame.height:
        fail(f"validate({table!r}).row_count is {outcome.row_count}, the table has {frame.height} rows")
    return outcome


def check_output_schema(kit: Kit) -> str:
    outcomes = kit.main_or_fail()
    for table, frame in world_tables(kit).items():
        check_outcome(table, outcomes[table], frame)
    return ", ".join(f"{t}: {len(o.results)} expectations" for t, o in outcomes.items())


def check_dtypes(kit: Kit) -> str:
    for table, outcome in kit.main_or_fail().items():
        if not isinstance(check_outcome(table, outcome).row_count, int):
            fail(f"{table}: row_count must be an int, got {type(outcome.row_count).__name__}")
        for r in outcome.results:
            if not isinstance(r, ExpectationOutcome):
                fail(f"{table}: results must be ExpectationOutcome, got {type(r).__name__}")
            if not (isinstance(r.expectation, str) and r.expectation):
                fail(f"{table}: an expectation has no name")
            if not (r.column is None or isinstance(r.column, str)):
                fail(f"{table}: {r.expectation}.column must be a str or None, got {type(r.column).__name__}")
            if not isinstance(r.success, bool):
                fail(f"{table}: {r.expectation}.success must be a bool, got {type(r.success).__name__}")
            if not (isinstance(r.unexpected_count, int) and r.unexpected_count >= 0):
                fail(f"{table}: {r.expectation}.unexpected_count must be an int >= 0")
            if not isinstance(r.sample, list):
                fail(f"{table}: {r.expectation}.sample must be a list")
    return ""


def check_row_invariants(kit: Kit) -> str:
    tables = world_tables(kit)
    for table, outcome in kit.main_or_fail().items():
        if not check_outcome(table, outcome, tables[table]).success:
            fail(f"valid data was rejected: {outcome.describe()}")
    return "valid data passes"


def check_empty_input(kit: Kit) -> str:
    tables = {t: f.head(0) for t, f in world_tables(kit).items()}
    for table, outcome in validate_all(kit, tables).items():
        if check_outcome(table, outcome, tables[table]).success:
            fail(f"an empty {table} table passed validation (nothing downstream can use it)")
    return "empty tables are rejected"


def first_row(column: str, value: Any) -> pl.Expr:
    """``column`` with its first row replaced by ``value``."""
    return pl.when(pl.int_range(pl.len()) == 0).then(value).otherwise(pl.col(column)).alias(column)


def defects(good: Mapping[str, pl.DataFrame]) -> list[tuple[str, str, str, pl.DataFrame]]:
    """``(table, column, what, damaged table)``: one defect each, that the plugin must report."""
    users, inter = good["users"], good["interactions"]
    stranger = inter.head(1).with_columns(pl.lit("no-such-user").alias("user_id"))
    return [
        ("interactions", "exposure", "a missing required column", inter.drop("exposure")),
        ("users", "user_id", "a duplicated key", pl.concat([users, users.head(1)])),
        ("users", "user_id", "a null key", users.with_columns(first_row("user_id", None))),
        ("interactions", "exposure", "an exposure of 2", inter.with_columns(first_row("exposure", 2))),
        (
            "interactions",
            "outcome",
            "a non-numeric outcome",
            inter.with_columns(pl.col("outcome").cast(pl.String).replace({"0": "no", "1": "yes"})),
        ),
        ("interactions", "user_id", "a user_id not in users", pl.concat([inter, stranger])),
    ]


def check_malformed_input(kit: Kit) -> str:
    good = world_tables(kit)
    plugin = kit.make()
    found = defects(good)
    missed = []
    for table, column, what, frame in found:
        outcome = validate(kit, plugin, table, {**good, table: frame}, f"validate({table!r}) on {what}")
        check_outcome(table, outcome, frame)
        named = any(f.column == column for f in outcome.failures) or column in outcome.describe()
        if outcome.success or not named:
            missed.append(f"{table} with {what} ({'passed' if outcome.success else 'not named: ' + column})")
    if missed:
        fail("defects not reported: " + "; ".join(missed))
    return f"{len(found)} defects reported"
