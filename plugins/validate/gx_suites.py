"""The built-in validate plugin: one Great Expectations 1.x suite per canonical table.

The suite encodes the data contract of docs/plugins.md (schema, nulls, key uniqueness, value ranges:
finite numeric outcomes, timestamps in [1970, 2200), referential integrity, minimum sizes of the
training rows); GX runs it on the table, in row batches on a large one (``gx_batches``), and every
verdict is turned into an ``ExpectationOutcome`` that names the table, the column, the count and
sample bad values.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import Field

from causalrec_assets.contracts import (
    EPOCH_SECONDS_MAX,
    KEY_COLUMNS,
    REQUIRED_COLUMNS,
    SPLITS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
)
from causalrec_assets.plugin_api import (
    ExpectationOutcome,
    PluginConfig,
    PluginContext,
    ValidatePlugin,
    ValidationOutcome,
)
from causalrec_plugins.validate.gx_batches import BATCH_ROWS, MIN_BATCH_ROWS, TRAIN_ROWS, Verdict, validate_frame

if TYPE_CHECKING:
    import great_expectations as gx
    import great_expectations.expectations as gxe

# numpy / pandas dtype names (and Python types, for object columns) that count as numbers
NUMERIC_TYPES: list[str] = [
    *(f"{p}{b}" for p in ("int", "uint", "Int", "UInt") for b in (8, 16, 32, 64)),
    *("float32", "float64", "Float32", "Float64", "int", "float"),
]

FLOAT_MAX = sys.float_info.max
NUMBER_TEXT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"  # what reads as a number
MIN_DISTINCT = 2  # users, items of the training rows
SAMPLE_POOL = 20  # bad values fetched per value shown

# interactions columns whose values must be found in another table's key: column -> table
REFERENCES: dict[str, str] = {"user_id": "users", "item_id": "items"}


def build_suite(
    table: str,
    tables: Mapping[str, pl.DataFrame],
    *,
    columns: Collection[str] | None = None,
    allowed_splits: Sequence[str] = SPLITS,
    schema: Mapping[str, pl.DataType] | None = None,
) -> gx.ExpectationSuite:
    """The contract of ``table`` as a GX suite.

    ``columns`` are the columns the checked frame has (default: ``tables[table]``'s). For a
    required column that is absent only ``expect_column_to_exist`` is kept, so a missing column
    gives one clear failure instead of a cascade of GX errors; ``split`` is checked only if present.
    Referential checks take their value sets from ``tables["users"]`` / ``tables["items"]``.
    ``schema`` (default: ``tables[table]``'s) picks the range checks that fit each column's type.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if columns is None and table in tables:
        columns = tables[table].columns
    if schema is None:
        schema = dict(tables[table].schema) if table in tables else {}
    present = set(columns) if columns is not None else set(REQUIRED_COLUMNS.get(table, ())) | {"split"}
    required = REQUIRED_COLUMNS.get(table, ())
    exps: list[gxe.Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    exps += [gxe.ExpectColumnToExist(column=c, meta={"detail": "required column is missing"}) for c in required]
    missing = {"detail": "missing values (null, or NaN)"}
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta=missing) for c in required if c in present]
    key = KEY_COLUMNS.get(table)
    if key in present:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=key, meta={"detail": "duplicated key"}))
    if table == "interactions":
        if "exposure" in present:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column="exposure", value_set=[0, 1]))
        if "outcome" in present:
            exps.append(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column="outcome", type_list=NUMERIC_TYPES, meta={"detail": "outcome must be numeric"}
                )
            )
            exps += outcome_values(schema.get("outcome"))
        if "timestamp" in present:
            exps += timestamp_range(schema.get("timestamp"))
        if "split" in present:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(allowed_splits)))
        exps += minimum_sizes(present, schema.get("exposure"))
        for col, owner in REFERENCES.items():
            other = tables.get(owner)
            if col in present and other is not None and col in other.columns:
                known = other.get_column(col).drop_nulls().unique().to_list()
                exps.append(
                    gxe.ExpectColumnValuesToBeInSet(
                        column=col, value_set=known, meta={"detail": f"not found in {owner}.{col}"}
                    )
                )
    return gx.ExpectationSuite(name=f"causalrec.{table}", expectations=exps)


def outcome_values(dtype: pl.DataType | None) -> list[gxe.Expectation]:
    """Outcomes are finite numbers: ``inf`` would count as a positive, text cannot be averaged."""
    import great_expectations.expectations as gxe

    if dtype is not None and dtype.is_numeric():
        finite = "outcome must be a finite number (inf and -inf are refused)"
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="outcome", min_value=-FLOAT_MAX, max_value=FLOAT_MAX, meta={"detail": finite}
            )
        ]
    if dtype == pl.String:
        text = "outcome must be numeric (0/1, or a rating), not text"
        return [gxe.ExpectColumnValuesToMatchRegex(column="outcome", regex=NUMBER_TEXT, meta={"detail": text})]
    return []


def timestamp_range(dtype: pl.DataType | None) -> list[gxe.Expectation]:
    """Timestamps lie in [1970, 2200): seconds since 1970 as numbers, or datetimes."""
    import great_expectations.expectations as gxe

    if dtype is not None and dtype.is_numeric():
        low, high, unit = 0, EPOCH_SECONDS_MAX, "seconds since 1970-01-01 UTC"
    elif isinstance(dtype, pl.Datetime):
        low, high, unit = TIMESTAMP_MIN, TIMESTAMP_MAX, "datetimes"
    else:
        return []
    detail = f"timestamp out of range: {unit} from {TIMESTAMP_MIN:%Y-%m-%d} to before {TIMESTAMP_MAX:%Y-%m-%d}"
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="timestamp", min_value=low, max_value=high, strict_max=True, meta={"detail": detail}
        )
    ]


def minimum_sizes(present: Collection[str], exposure: pl.DataType | None = None) -> list[gxe.Expectation]:
    """What the later stages need of the training rows, checked before any of them runs: two users
    and two items (structure and cross-fitting split by user), and some exposed rows (an all-zero
    exposure leaves nothing to estimate; rating logs with exposure 1 everywhere are fine)."""
    import great_expectations.expectations as gxe

    train = {"row_condition": TRAIN_ROWS, "condition_parser": "pandas"} if "split" in present else {}
    exps: list[gxe.Expectation] = []
    for col in ("user_id", "item_id"):
        if col in present:
            detail = f"the training rows need at least {MIN_DISTINCT} distinct {col} values"
            exps.append(
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column=col, min_value=MIN_DISTINCT, meta={"detail": detail}, **train
                )
            )
    if "exposure" in present and exposure is not None and (exposure.is_numeric() or exposure == pl.Boolean):
        detail = "no training row has exposure = 1: nothing was shown, so no effect can be estimated"
        exps.append(gxe.ExpectColumnMaxToBeBetween(column="exposure", min_value=1, meta={"detail": detail}, **train))
    return exps


def distinct(values: list[Any]) -> list[Any]:
    """``values`` without repeats, in order (compared by equality, so unhashable values work too)."""
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _outcome(expectation: gxe.Expectation, verdict: Verdict, sample_size: int) -> ExpectationOutcome:
    """Turn one expectation's GX verdict into an ExpectationOutcome."""
    notes: list[str] = []
    if not verdict.success:
        notes.append((expectation.meta or {}).get("detail", ""))
        notes += [f"observed {value!r}" for value in verdict.observed]
        if verdict.error:
            notes.append(f"GX error: {verdict.error}")
    return ExpectationOutcome(
        expectation=expectation.expectation_type,
        column=getattr(expectation, "column", None),
        success=verdict.success,
        unexpected_count=verdict.unexpected_count,
        sample=distinct(verdict.partial)[:sample_size],
        detail="; ".join(n for n in notes if n),
    )


class GreatExpectationsValidate(ValidatePlugin):
    """Validates a canonical table with a Great Expectations 1.x suite (see ``build_suite``)."""

    _gx: tuple[Any, dict[str, Any]] | None = None  # (pandas datasource, batch definition per table)

    class Config(PluginConfig):
        sample_size: int = Field(default=5, ge=0, description="How many bad values each failure reports.")
        allowed_splits: list[str] = Field(
            default=list(SPLITS), description="Values the interactions' optional split column may take."
        )
        batch_rows: int = Field(
            default=BATCH_ROWS,
            ge=MIN_BATCH_ROWS,
            description="Rows converted to pandas and validated at once: a larger table is validated in"
            " consecutive batches of this many rows, in bounded memory, with the same verdicts.",
        )

    def _batch_definition(self, table: str) -> Any:
        """One ephemeral GX context per plugin instance, made on first use (creating it is slow)."""
        if self._gx is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self._gx = (context.data_sources.add_pandas("causalrec"), {})
        source, definitions = self._gx
        if table not in definitions:
            asset = source.add_dataframe_asset(name=table)
            definitions[table] = asset.add_batch_definition_whole_dataframe(f"{table}_whole")
        return definitions[table]

    def validate(
        self, table: str, frame: pl.DataFrame, tables: Mapping[str, pl.DataFrame], context: PluginContext
    ) -> ValidationOutcome:
        cfg = self.config
        suite = build_suite(
            table, tables, columns=frame.columns, allowed_splits=cfg.allowed_splits, schema=dict(frame.schema)
        )
        # more bad values than shown, so the sample can show distinct ones ('no' and 'yes', not 'no' five times)
        pool = SAMPLE_POOL * max(cfg.sample_size, 1)
        judged = validate_frame(self._batch_definition(table), suite.expectations, frame, cfg.batch_rows, pool)
        results = [_outcome(e, v, cfg.sample_size) for e, v in judged]
        outcome = ValidationOutcome(table=table, row_count=frame.height, results=results)
        context.log.info(outcome.describe())
        return outcome
