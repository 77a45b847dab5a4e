"""The Great Expectations validate plugin on real GX 1.x: a good dataset passes, each defect is named."""

from __future__ import annotations

import time

import great_expectations as gx
import polars as pl
import pytest

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.validate.protocol import ValidatePlugin, ValidationOutcome
from causalrec_plugins.validate.gx_suites import GreatExpectationsValidate, build_suite


@pytest.fixture(scope="module")
def plugin() -> GreatExpectationsValidate:
    """One instance for the module, so the (slow) GX context is made once, as in a run."""
    return GreatExpectationsValidate()


def good_tables() -> dict[str, pl.DataFrame]:
    users = pl.DataFrame({"user_id": ["u1", "u2", "u3"], "age_group": ["young", "old", "old"]})
    items = pl.DataFrame({"item_id": [10, 11, 12], "text": ["a", "b", "c"]})
    interactions = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3", "u3"],
            "item_id": [10, 11, 12, 10, 12],
            "exposure": [1, 0, 1, 1, 0],
            "outcome": [1.0, 0.0, 4.5, 0.0, 1.0],
            "split": ["train", "train", "test", "train", "test"],
        }
    )
    return {"users": users, "items": items, "interactions": interactions}


def run(plugin: GreatExpectationsValidate, table: str, tables: dict[str, pl.DataFrame]) -> ValidationOutcome:
    return plugin.validate(table, tables[table], tables, PluginContext())


def only_failure(outcome: ValidationOutcome, expectation: str, column: str | None):
    matches = [f for f in outcome.failures if f.expectation == expectation and f.column == column]
    assert len(matches) == 1, outcome.describe()
    return matches[0]


def test_plugin_shape() -> None:
    assert issubclass(GreatExpectationsValidate, ValidatePlugin)
    config = GreatExpectationsValidate.Config()
    assert config.sample_size == 5 and config.allowed_splits == ["train", "test"]
    assert GreatExpectationsValidate()._gx is None  # no work in __init__


def test_build_suite_is_a_gx_suite() -> None:
    suite = build_suite("interactions", good_tables())
    assert isinstance(suite, gx.ExpectationSuite)
    types = {(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations}
    assert ("expect_table_row_count_to_be_between", None) in types
    assert ("expect_column_values_to_be_in_set", "split") in types
    assert ("expect_column_values_to_be_in_set", "user_id") in types  # referential integrity
    no_split = build_suite("interactions", good_tables(), columns=["user_id", "item_id", "exposure", "outcome"])
    assert all(getattr(e, "column", None) != "split" for e in no_split.expectations)


def test_good_dataset_passes(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    for table in tables:
        outcome = run(plugin, table, tables)
        assert outcome.success, outcome.describe()
        assert outcome.row_count == tables[table].height
        assert len(outcome.results) >= 4


def test_null_user_id(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["users"] = pl.DataFrame({"user_id": ["u1", None, "u3"]})
    outcome = run(plugin, "users", tables)
    failure = only_failure(outcome, "expect_column_values_to_not_be_null", "user_id")
    assert failure.unexpected_count == 1
    text = failure.describe("users")
    assert "expect_column_values_to_not_be_null failed on users.user_id: 1 bad row(s)" in text
    assert "None" in text


def test_exposure_two(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(pl.Series("exposure", [1, 2, 1, 1, 0]))
    outcome = run(plugin, "interactions", tables)
    assert len(outcome.failures) == 1, outcome.describe()
    failure = only_failure(outcome, "expect_column_values_to_be_in_set", "exposure")
    assert failure.describe("interactions") == (
        "expect_column_values_to_be_in_set failed on interactions.exposure: 1 bad row(s), e.g. [2]"
    )


def test_duplicated_item_id(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["items"] = pl.DataFrame({"item_id": [10, 11, 11, 12]})
    failure = only_failure(run(plugin, "items", tables), "expect_column_values_to_be_unique", "item_id")
    text = failure.describe("items")
    assert "expect_column_values_to_be_unique failed on items.item_id: 2 bad row(s)" in text
    assert "11" in text


def test_unknown_user(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    extra = pl.DataFrame({"user_id": ["ghost"], "item_id": [10], "exposure": [1], "outcome": [1.0], "split": ["train"]})
    tables["interactions"] = pl.concat([tables["interactions"], extra])
    outcome = run(plugin, "interactions", tables)
    failure = only_failure(outcome, "expect_column_values_to_be_in_set", "user_id")
    text = failure.describe("interactions")
    assert "interactions.user_id: 1 bad row(s), e.g. ['ghost']" in text
    assert "users.user_id" in text


def test_missing_exposure_column(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].drop("exposure")
    outcome = run(plugin, "interactions", tables)
    assert len(outcome.failures) == 1, outcome.describe()
    failure = only_failure(outcome, "expect_column_to_exist", "exposure")
    assert "expect_column_to_exist failed on interactions.exposure" in failure.describe("interactions")
    assert "GX error" not in outcome.describe()


def test_empty_interactions(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].clear()
    outcome = run(plugin, "interactions", tables)
    assert outcome.row_count == 0
    failure = only_failure(outcome, "expect_table_row_count_to_be_between", None)
    assert "expect_table_row_count_to_be_between failed on interactions" in failure.describe("interactions")
    assert "observed 0" in failure.describe("interactions")


def test_unknown_split(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(
        pl.Series("split", ["train", "validation", "test", "train", "test"])
    )
    failure = only_failure(run(plugin, "interactions", tables), "expect_column_values_to_be_in_set", "split")
    assert "interactions.split: 1 bad row(s), e.g. ['validation']" in failure.describe("interactions")


def test_non_numeric_outcome(plugin: GreatExpectationsValidate) -> None:
    tables = good_tables()
    tables["interactions"] = tables["interactions"].with_columns(pl.col("outcome").cast(pl.String))
    failure = only_failure(run(plugin, "interactions", tables), "expect_column_values_to_be_in_type_list", "outcome")
    assert "numeric" in failure.describe("interactions")


def test_twenty_thousand_rows_is_fast(plugin: GreatExpectationsValidate) -> None:
    n = 20_000
    users = pl.DataFrame({"user_id": [f"u{i}" for i in range(2_000)]})
    items = pl.DataFrame({"item_id": list(range(500))})
    interactions = pl.DataFrame(
        {
            "user_id": [f"u{i % 2_000}" for i in range(n)],
            "item_id": [(i * 7) % 500 for i in range(n)],
            "exposure": [i % 2 for i in range(n)],
            "outcome": [float(i % 3 == 0) for i in range(n)],
            "split": ["test" if i % 5 == 0 else "train" for i in range(n)],
        }
    )
    tables = {"users": users, "items": items, "interactions": interactions}
    start = time.perf_counter()
    outcome = run(plugin, "interactions", tables)
    assert outcome.success, outcome.describe()
    assert time.perf_counter() - start < 10
