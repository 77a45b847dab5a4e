"""The GX validate plugin in row batches, on real GX 1.x: a table split into several batches gets
the verdicts, bad-row counts and samples GX gives on the whole table at once, whichever batches
the bad rows sit in; and ``validation_report`` reuses the checks' recorded outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
import pytest
from pydantic import ValidationError

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.validate import assets as validate_assets
from causalrec_assets.stages.validate.protocol import ExpectationOutcome, ValidationOutcome
from causalrec_plugins.validate import gx_batches
from causalrec_plugins.validate.gx_batches import comparable_set, judge, key_batches, tagged_suite
from causalrec_plugins.validate.gx_suites import SAMPLE_POOL, GreatExpectationsValidate, _outcome, build_suite

BATCH = 500
N_USERS, N_ITEMS, N_ROWS = 1_200, 1_500, 3_000  # users and items over BATCH rows too; both id sets over 1,000
BAD_ROWS = [3, 1_650, 2_999]  # in the first, fourth and sixth batch


def plugin_with(batch_rows: int) -> GreatExpectationsValidate:
    return GreatExpectationsValidate(GreatExpectationsValidate.Config(batch_rows=batch_rows))


@pytest.fixture(scope="module")
def batched() -> GreatExpectationsValidate:
    return plugin_with(BATCH)


@pytest.fixture(scope="module")
def whole() -> GreatExpectationsValidate:
    """The same code path with one batch: the table is under its ``batch_rows``."""
    return plugin_with(10**9)


def good_tables() -> dict[str, pl.DataFrame]:
    users = pl.DataFrame({"user_id": [f"u{i}" for i in range(N_USERS)], "region": ["east", "west"] * (N_USERS // 2)})
    items = pl.DataFrame({"item_id": list(range(N_ITEMS)), "text": [f"item {i}" for i in range(N_ITEMS)]})
    start = datetime(2026, 1, 1)
    interactions = pl.DataFrame(
        {
            "user_id": [f"u{(i * 7) % N_USERS}" for i in range(N_ROWS)],
            "item_id": [(i * 11) % N_ITEMS for i in range(N_ROWS)],
            "exposure": [i % 2 for i in range(N_ROWS)],
            "outcome": [float(i % 3 == 0) for i in range(N_ROWS)],
            "timestamp": [start + timedelta(minutes=i) for i in range(N_ROWS)],
            "split": ["test" if i % 5 == 0 else "train" for i in range(N_ROWS)],
        }
    )
    return {"users": users, "items": items, "interactions": interactions}


def at_rows(column: str, value: Any, rows: list[int] = BAD_ROWS) -> pl.Expr:
    """``column`` with ``value`` at ``rows``."""
    return pl.when(pl.int_range(pl.len()).is_in(rows)).then(value).otherwise(pl.col(column)).alias(column)


def run(plugin: GreatExpectationsValidate, table: str, tables: dict[str, pl.DataFrame]) -> ValidationOutcome:
    return plugin.validate(table, tables[table], tables, PluginContext())


def at_once(plugin: GreatExpectationsValidate, table: str, tables: dict[str, pl.DataFrame]) -> list[ExpectationOutcome]:
    """Every expectation of the suite judged by GX in one run on the whole table as one pandas frame
    (how the plugin validated before batches), in GX's order."""
    frame = tables[table]
    cfg = plugin.config
    suite = build_suite(
        table, tables, columns=frame.columns, allowed_splits=cfg.allowed_splits, schema=dict(frame.schema)
    )
    expectations = list(suite.expectations)
    pool = SAMPLE_POOL * max(cfg.sample_size, 1)
    verdicts = judge(
        plugin._batch_definition(table), tagged_suite(dict(enumerate(expectations))), frame.to_pandas(), pool
    )
    return [_outcome(expectations[i], v, cfg.sample_size) for i, v in verdicts.items()]


def outcomes_agree(batched, whole, table: str, tables: dict[str, pl.DataFrame]) -> ValidationOutcome:
    """The batched outcome, after checking it equals the one-batch outcome and GX's on the whole table."""
    outcome = run(batched, table, tables)
    assert outcome == run(whole, table, tables)
    assert outcome.results == at_once(batched, table, tables)
    assert outcome.row_count == tables[table].height
    return outcome


def only_failure(outcome: ValidationOutcome, expectation: str, column: str | None) -> ExpectationOutcome:
    matches = [f for f in outcome.failures if f.expectation == expectation and f.column == column]
    assert len(matches) == 1, outcome.describe()
    return matches[0]


def test_batch_rows_is_a_bounded_parameter() -> None:
    assert GreatExpectationsValidate.Config().batch_rows == gx_batches.BATCH_ROWS
    assert "batch" in GreatExpectationsValidate.Config.model_fields["batch_rows"].description
    with pytest.raises(ValidationError):
        GreatExpectationsValidate.Config(batch_rows=10)


def test_large_tables_are_judged_in_batches(batched, monkeypatch: pytest.MonkeyPatch) -> None:
    """GX sees the table's rows ``batch_rows`` at a time, every row once (the aggregates see small
    frames of one or two columns)."""
    sizes: list[int] = []

    def recording(definition, suite, frame, pool):
        if list(frame.columns) == tables["interactions"].columns:
            sizes.append(len(frame))
        return judge(definition, suite, frame, pool)

    monkeypatch.setattr(gx_batches, "judge", recording)
    tables = good_tables()
    assert run(batched, "interactions", tables).success
    assert sizes == [BATCH] * (N_ROWS // BATCH)


@pytest.mark.parametrize("table", ["users", "items", "interactions"])
def test_good_tables_pass_with_the_same_outcome(batched, whole, table: str) -> None:
    outcome = outcomes_agree(batched, whole, table, good_tables())
    assert outcome.success, outcome.describe()


def test_item_id_duplicated_across_batches(batched, whole) -> None:
    tables = good_tables()
    tables["items"] = tables["items"].with_columns(at_rows("item_id", 7, [1_200]))  # item 7 is row 7 too
    failure = only_failure(
        outcomes_agree(batched, whole, "items", tables), "expect_column_values_to_be_unique", "item_id"
    )
    assert (failure.unexpected_count, failure.sample) == (2, [7])


def test_many_duplicates_are_grouped_into_batches(batched, whole) -> None:
    """More duplicated rows than a batch: grouped by value, with the whole table's verdict, count
    and (here) sample."""
    tables = good_tables()
    tables["items"] = tables["items"].with_columns((pl.col("item_id") % 400).alias("item_id"))
    failure = only_failure(
        outcomes_agree(batched, whole, "items", tables), "expect_column_values_to_be_unique", "item_id"
    )
    assert (failure.unexpected_count, failure.sample) == (N_ITEMS, [0, 1, 2, 3, 4])


def test_value_sets_are_compared_by_polars_only_where_pandas_agrees() -> None:
    assert comparable_set(["u1", "u2"], pl.String).to_list() == ["u1", "u2"]
    assert comparable_set([1, 2, 300], pl.Int8).to_list() == [1, 2]  # 300 is no Int8: it matches nothing
    assert comparable_set([1, "1"], pl.String) is None  # pandas: the string "1" is not the number 1
    assert comparable_set([1, 2], pl.Float64) is None
    assert comparable_set([1, 2], pl.String) is None


def test_key_batches_keep_every_duplicate_a_duplicate() -> None:
    rows = pl.DataFrame({"k": [i % 97 for i in range(2_000)] + [5] * 1_300})
    rows = rows.filter(pl.col("k").is_duplicated())
    batches = list(key_batches(rows, "k", 100))
    assert len(batches) > 1 and max(b.height for b in batches) <= 101
    assert sorted(pl.concat(batches)["k"].to_list()) == sorted(rows["k"].to_list())
    assert all(b["k"].is_duplicated().all() for b in batches)


def test_null_user_id(batched, whole) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(at_rows("user_id", None))
    outcome = outcomes_agree(batched, whole, "interactions", tables)
    failure = only_failure(outcome, "expect_column_values_to_not_be_null", "user_id")
    assert (failure.unexpected_count, failure.sample) == (3, [None])
    assert "interactions.user_id: 3 bad row(s)" in failure.describe("interactions")


def test_exposure_two(batched, whole) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(at_rows("exposure", 2))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_values_to_be_in_set", "exposure"
    )
    assert (failure.unexpected_count, failure.sample) == (3, [2])


def test_exposure_two_with_a_null_in_another_batch(batched, whole) -> None:
    """A null anywhere makes the whole column float64 in pandas; every batch follows, so the sample
    reads 2.0 in batches without a null too, as on the whole table."""
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(at_rows("exposure", 2, [3]))
    tables["interactions"] = tables["interactions"].with_columns(at_rows("exposure", None, [2_999]))
    outcome = outcomes_agree(batched, whole, "interactions", tables)
    failure = only_failure(outcome, "expect_column_values_to_be_in_set", "exposure")
    assert failure.sample == [2.0] and isinstance(failure.sample[0], float)


def test_unknown_user_ids(batched, whole) -> None:
    tables = good_tables()
    inter = tables["interactions"]
    ghosts = [at_rows("user_id", pl.lit(f"ghost{r}"), [r]) for r in BAD_ROWS]
    for ghost in ghosts:
        inter = inter.with_columns(ghost)
    tables["interactions"] = inter
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_values_to_be_in_set", "user_id"
    )
    assert (failure.unexpected_count, failure.sample) == (3, [f"ghost{r}" for r in BAD_ROWS])
    assert "not found in users.user_id" in failure.describe("interactions")


def test_unknown_item_ids_of_another_type_are_left_to_gx(batched, whole) -> None:
    """Polars does not compare float ids with the integer item ids: every row goes to GX, in
    batches, which finds the ids that are known (pandas compares 7.0 with 7) and the one that is not."""
    tables = good_tables()
    as_floats = tables["interactions"].with_columns(pl.col("item_id").cast(pl.Float64))
    tables["interactions"] = as_floats.with_columns(at_rows("item_id", 0.5, [1_700]))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_values_to_be_in_set", "item_id"
    )
    assert (failure.unexpected_count, failure.sample) == (1, [0.5])


def test_infinite_outcome(batched, whole) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(at_rows("outcome", float("inf")))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_values_to_be_between", "outcome"
    )
    assert (failure.unexpected_count, failure.sample) == (3, [float("inf")])
    assert "finite" in failure.detail


def test_text_outcome(batched, whole) -> None:
    tables = good_tables()
    text = pl.col("outcome").cast(pl.String)
    tables["interactions"] = tables["interactions"].with_columns(text).with_columns(at_rows("outcome", pl.lit("yes")))
    outcome = outcomes_agree(batched, whole, "interactions", tables)
    regex = only_failure(outcome, "expect_column_values_to_match_regex", "outcome")
    assert (regex.unexpected_count, regex.sample) == (3, ["yes"])
    types = only_failure(outcome, "expect_column_values_to_be_in_type_list", "outcome")
    assert "numeric" in types.detail


def test_timestamp_out_of_range(batched, whole) -> None:
    tables = good_tables()
    early = tables["interactions"].with_columns(at_rows("timestamp", datetime(1960, 5, 1), [10]))
    tables["interactions"] = early.with_columns(at_rows("timestamp", datetime(2300, 1, 1), [2_600]))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_values_to_be_between", "timestamp"
    )
    assert (failure.unexpected_count, failure.sample) == (2, ["1960-05-01T00:00:00", "2300-01-01T00:00:00"])


def test_no_exposure_in_the_training_rows(batched, whole) -> None:
    tables = good_tables()
    exposed_only_in_test = pl.when(pl.col("split") == "test").then(pl.col("exposure")).otherwise(0)
    tables["interactions"] = tables["interactions"].with_columns(exposed_only_in_test.alias("exposure"))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables), "expect_column_max_to_be_between", "exposure"
    )
    assert "no training row has exposure = 1" in failure.detail and "observed 0" in failure.detail


def test_fewer_than_two_training_users(batched, whole) -> None:
    tables = good_tables()
    one_user = pl.when(pl.col("split") == "train").then(pl.lit("u1")).otherwise(pl.col("user_id"))
    tables["interactions"] = tables["interactions"].with_columns(one_user.alias("user_id"))
    failure = only_failure(
        outcomes_agree(batched, whole, "interactions", tables),
        "expect_column_unique_value_count_to_be_between",
        "user_id",
    )
    assert "at least 2 distinct user_id" in failure.detail and "observed 1" in failure.detail


def test_empty_table(batched, whole) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].clear()
    outcome = outcomes_agree(batched, whole, "interactions", tables)
    assert "observed 0" in only_failure(outcome, "expect_table_row_count_to_be_between", None).detail


# ------------------------------------------------------------------ validation_report reuses the checks


@pytest.fixture
def validate_job_assets() -> list:
    tables = good_tables()

    @dg.asset(name="users")
    def users() -> pl.DataFrame:
        return tables["users"]

    @dg.asset(name="items")
    def items() -> pl.DataFrame:
        return tables["items"]

    @dg.asset(name="interactions")
    def interactions() -> pl.DataFrame:
        return tables["interactions"]

    return [users, items, interactions, *validate_assets.CHECKS, validate_assets.validation_report]


class Forgetful(dict):
    """A memo that keeps nothing: each step as if in its own process (the multiprocess executor)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def materialize(assets: list, monkeypatch: pytest.MonkeyPatch, run_config: dict | None = None) -> list[str]:
    """Materialize in process with an empty memo per step; the tables the plugin validated."""
    validated: list[str] = []
    validate = GreatExpectationsValidate.validate

    def counting(self, table, frame, tables, context):
        validated.append(table)
        return validate(self, table, frame, tables, context)

    monkeypatch.setattr(validate_assets, "_OUTCOMES", Forgetful())
    monkeypatch.setattr(GreatExpectationsValidate, "validate", counting)
    result = dg.materialize(
        assets,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"io_manager": dg.mem_io_manager},
        run_config=run_config or {},
    )
    assert result.success
    report = result.output_for_node("validation_report")
    assert report.height > 20 and report["success"].all()
    return validated


def test_report_reuses_the_outcomes_the_checks_recorded(validate_job_assets, monkeypatch) -> None:
    assert sorted(materialize(validate_job_assets, monkeypatch)) == ["interactions", "items", "users"]


def test_report_validates_again_under_another_config(validate_job_assets, monkeypatch) -> None:
    other = {"ops": {"validation_report": {"config": {"great_expectations": {"sample_size": 3}}}}}
    validated = materialize(validate_job_assets, monkeypatch, other)
    assert sorted(validated) == sorted(["interactions", "items", "users"] * 2)
