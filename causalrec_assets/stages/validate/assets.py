"""The validate stage: blocking asset checks on the three canonical tables.

Each check is its own step (``blocking=True``), so a failing check stops every downstream
asset: bad data never reaches (nor overwrites) embeddings, graphs, effects or rankings. The
check's metadata names the expectation, the column, the count and sample values.

``validation_report`` needs the same verdicts. In the checks' process it takes them from memory;
in another one (the multiprocess executor) from the outcome a passing check recorded in this
run's event log, under a key of the config and the content of every table the plugin saw, so a
different or changed table is validated again rather than reused.
"""

import hashlib
import json
from collections.abc import Mapping

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.validate.protocol import ValidatePlugin, ValidationOutcome

ValidateStageConfig = stage_config_class("validate")


# Outcomes already computed in this process (the checks run before ``validation_report``), keyed by
# ``outcome_key``. Empty in a fresh process.
_OUTCOMES: dict[str, ValidationOutcome] = {}
_MAX_OUTCOMES = 16
RECORD = "outcome"  # the check metadata entry holding a passing outcome and its key


def fingerprint(frame: pl.DataFrame) -> tuple:
    """The frame's content: shape, schema and a digest of its row hashes (in order)."""
    hashes = frame.hash_rows(seed=0).to_numpy()
    return frame.height, tuple((c, str(t)) for c, t in frame.schema.items()), hashlib.sha256(hashes).hexdigest()


def outcome_key(config, table: str, tables: Mapping[str, pl.DataFrame]) -> str:
    """What an outcome depends on: the stage config, the table, and the content of every table the
    plugin saw. Within one run (one code version) equal keys mean equal verdicts."""
    parts = (config.model_dump_json(), table, tuple(sorted((t, fingerprint(f)) for t, f in tables.items())))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def visible_tables(table: str, tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """What the table's check sees: all tables for interactions (referential checks), else its own."""
    return dict(tables) if table == "interactions" else {table: tables[table]}


def remember(key: str, outcome: ValidationOutcome) -> None:
    """Keep ``outcome`` for this process, dropping the oldest past ``_MAX_OUTCOMES``."""
    if len(_OUTCOMES) >= _MAX_OUTCOMES:
        _OUTCOMES.pop(next(iter(_OUTCOMES)))
    _OUTCOMES[key] = outcome


def recorded_outcome(context, key: str) -> ValidationOutcome | None:
    """The outcome a check of this run recorded under ``key`` (None if none did). Only this run:
    its steps share one code version, so an equal key means the same plugin on the same data."""
    events = context.instance.all_logs(context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for event in events:
        evaluation = event.dagster_event.asset_check_evaluation_data if event.dagster_event else None
        data = getattr((evaluation.metadata if evaluation else {}).get(RECORD), "data", None)
        if isinstance(data, dict) and data.get("key") == key:
            return ValidationOutcome.from_dict(data)
    return None


def run_validation(
    context, config, table: str, tables: dict[str, pl.DataFrame], *, reuse_recorded: bool = False
) -> tuple[str, ValidationOutcome]:
    """The plugin's outcome on ``table`` and its key, reused when this process already validated
    the same content (or, with ``reuse_recorded``, when a check of this run recorded it)."""
    key = outcome_key(config, table, tables)
    outcome = _OUTCOMES.get(key)
    if outcome is not None:
        context.log.info(f"{outcome.describe()} (the same table's check result, reused)")
    elif reuse_recorded and (outcome := recorded_outcome(context, key)) is not None:
        context.log.info(f"{outcome.describe()} (the check result recorded in this run, reused)")
        remember(key, outcome)
    else:
        plugin = plugin_from_config(ValidatePlugin, config, context.log)
        outcome = plugin.validate(table, tables[table], tables, plugin_context(context))
        remember(key, outcome)
    if not outcome.success:
        context.log.error(f"validation failed: {outcome.describe()}")
    return key, outcome


def record(key: str, outcome: ValidationOutcome) -> dict:
    """Check metadata that hands a passing outcome to ``validation_report`` in another process
    (a failing check blocks the report, so it needs none); empty unless it survives JSON intact."""
    if not outcome.success:
        return {}
    data = {"key": key, **outcome.to_dict()}
    try:
        intact = ValidationOutcome.from_dict(json.loads(json.dumps(data, allow_nan=False))) == outcome
    except (TypeError, ValueError):
        intact = False
    return {RECORD: dg.MetadataValue.json(data)} if intact else {}


def check_result(outcome: ValidationOutcome, key: str) -> dg.AssetCheckResult:
    failures = outcome.failures
    metadata = {
        "rows": outcome.row_count,
        "expectations": len(outcome.results),
        "failed": len(failures),
        "summary": outcome.describe(),
        **record(key, outcome),
    }
    if failures:
        metadata["failures"] = md.markdown(
            pl.DataFrame(
                {
                    "expectation": [f.expectation for f in failures],
                    "column": [f.column or "" for f in failures],
                    "bad_rows": [f.unexpected_count for f in failures],
                    "sample": [repr(f.sample[:5]) for f in failures],
                }
            )
        )
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=outcome.describe(),
    )


@dg.asset_check(asset="users", blocking=True, description="Great Expectations contract of the users table.")
def users_contract(context: dg.AssetCheckExecutionContext, config: ValidateStageConfig, users: pl.DataFrame):  # type: ignore[valid-type]
    key, outcome = run_validation(context, config, "users", {"users": users})
    return check_result(outcome, key)


@dg.asset_check(asset="items", blocking=True, description="Great Expectations contract of the items table.")
def items_contract(context: dg.AssetCheckExecutionContext, config: ValidateStageConfig, items: pl.DataFrame):  # type: ignore[valid-type]
    key, outcome = run_validation(context, config, "items", {"items": items})
    return check_result(outcome, key)


@dg.asset_check(
    asset="interactions",
    blocking=True,
    additional_ins={"users": dg.AssetIn("users"), "items": dg.AssetIn("items")},
    description="Great Expectations contract of the interactions table, with referential integrity.",
)
def interactions_contract(
    context: dg.AssetCheckExecutionContext,
    config: ValidateStageConfig,  # type: ignore[valid-type]
    interactions: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
):
    tables = {"users": users, "items": items, "interactions": interactions}
    key, outcome = run_validation(context, config, "interactions", tables)
    return check_result(outcome, key)


CHECKS = [users_contract, items_contract, interactions_contract]


@dg.asset(group_name="validate", owners=OWNERS, kinds={"great_expectations"})
def validation_report(
    context: dg.AssetExecutionContext,
    config: ValidateStageConfig,  # type: ignore[valid-type]
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
) -> dg.Output:
    """Every expectation's verdict on the three tables, in one table."""
    tables = {"users": users, "items": items, "interactions": interactions}
    rows = []
    for table in tables:
        _, outcome = run_validation(context, config, table, visible_tables(table, tables), reuse_recorded=True)
        for r in outcome.results:
            rows.append((table, r.expectation, r.column or "", r.success, r.unexpected_count, repr(r.sample[:5])))
    report = pl.DataFrame(
        rows, schema=["table", "expectation", "column", "success", "unexpected_count", "sample"], orient="row"
    )
    passed = int(report["success"].sum())
    return dg.Output(
        report,
        metadata={
            **md.plugin_metadata("validate", config.plugin),  # type: ignore[attr-defined]
            "expectations": report.height,
            "passed": passed,
            "failed": report.height - passed,
            "report": md.table(report, rows=40),
            **md.table_metadata(report, preview=0),
        },
    )
