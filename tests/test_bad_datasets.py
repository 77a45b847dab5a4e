"""Each bad dataset fails the run with a message naming the defect, and every published output
of the previous good run (ingest tables and embeddings included) stays byte-for-byte as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import failure_messages, materialize_all, published_files, write_canonical


def _null_user_id(d: Path) -> None:
    users = pl.read_csv(d / "users.csv")
    users = users.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("user_id")).alias("user_id")
    )
    users.write_csv(d / "users.csv")


def _exposure_two(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    inter.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(2).otherwise(pl.col("exposure")).alias("exposure")
    ).write_csv(d / "interactions.csv")


def _duplicated_item(d: Path) -> None:
    items = pl.read_csv(d / "items.csv")
    pl.concat([items, items.head(1)]).write_csv(d / "items.csv")


def _unknown_user(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    ghost = inter.head(1).with_columns(pl.lit("ghost_user").alias("user_id"))
    pl.concat([inter, ghost]).write_csv(d / "interactions.csv")


def _missing_exposure(d: Path) -> None:
    pl.read_csv(d / "interactions.csv").drop("exposure").write_csv(d / "interactions.csv")


def _empty_interactions(d: Path) -> None:
    pl.read_csv(d / "interactions.csv").head(0).write_csv(d / "interactions.csv")


def _binary_users(d: Path) -> None:
    (d / "users.csv").write_bytes(bytes(range(256)) * 40)


def _set_outcome(value: object) -> Callable[[Path], None]:
    def corrupt(d: Path) -> None:
        inter = pl.read_csv(d / "interactions.csv").with_columns(pl.col("outcome").cast(pl.Float64))
        inter.with_columns(
            pl.when(pl.int_range(pl.len()).is_in([4, 9])).then(value).otherwise(pl.col("outcome")).alias("outcome")
        ).write_csv(d / "interactions.csv")

    return corrupt


def _text_outcome(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    inter.with_columns(
        pl.when(pl.col("outcome") == 1).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("outcome")
    ).write_csv(d / "interactions.csv")


def _set_timestamp(value: str) -> Callable[[Path], None]:
    """Timestamps as epoch seconds, one of them ``value`` (written verbatim into the CSV)."""

    def corrupt(d: Path) -> None:
        inter = pl.read_csv(d / "interactions.csv")
        seconds = inter["timestamp"].str.to_datetime().dt.epoch("s").cast(pl.String)
        seconds = seconds.scatter(3, value)
        inter.with_columns(seconds.alias("timestamp")).write_csv(d / "interactions.csv", quote_style="never")

    return corrupt


def _text_timestamp(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    inter.with_columns(inter["timestamp"].scatter(3, "yesterday")).write_csv(d / "interactions.csv")


def _add_column(table: str, column: str) -> Callable[[Path], None]:
    def corrupt(d: Path) -> None:
        frame = pl.read_csv(d / f"{table}.csv")
        frame.with_columns(pl.lit(1).alias(column)).write_csv(d / f"{table}.csv")

    return corrupt


def _one_user(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    inter.filter(pl.col("user_id") == inter["user_id"][0]).write_csv(d / "interactions.csv")


def _no_exposure(d: Path) -> None:
    inter = pl.read_csv(d / "interactions.csv")
    inter.with_columns(pl.lit(0).alias("exposure")).write_csv(d / "interactions.csv")


def _linked_interactions(d: Path) -> None:
    (d / "interactions.csv").unlink()
    (d / "interactions").symlink_to(".", target_is_directory=True)


def _blank_data(_: Path) -> dict:
    return {"env": {"CAUSALREC_DATA": " "}}


def _ranking_k(k: int) -> Callable[[Path], dict]:
    def corrupt(_: Path) -> dict:
        return {"run_config": {"ops": {"ranking": {"config": {"causal": {"k": k}}}}}}

    return corrupt


BAD = {
    "null user_id": (_null_user_id, ["expect_column_values_to_not_be_null", "users.user_id"]),
    "exposure = 2": (_exposure_two, ["expect_column_values_to_be_in_set", "interactions.exposure", "[2]"]),
    "duplicated item_id": (_duplicated_item, ["expect_column_values_to_be_unique", "items.item_id"]),
    "unknown user": (_unknown_user, ["interactions.user_id", "ghost_user"]),
    "missing exposure column": (_missing_exposure, ["expect_column_to_exist", "interactions.exposure"]),
    "empty interactions": (_empty_interactions, ["expect_table_row_count_to_be_between", "interactions"]),
    "binary users file": (_binary_users, ["users", "UTF-8"]),
    "inf outcome": (_set_outcome(float("inf")), ["interactions.outcome", "2 bad row(s)", "inf", "finite"]),
    "-inf outcome": (_set_outcome(float("-inf")), ["interactions.outcome", "2 bad row(s)", "-inf", "finite"]),
    "NaN outcome": (_set_outcome(float("nan")), ["interactions.outcome", "2 bad row(s)", "NaN"]),
    "text outcome": (_text_outcome, ["interactions.outcome", "must be numeric", "'yes'"]),
    "negative timestamp": (_set_timestamp("-5"), ["interactions.timestamp", "1 bad row(s)", "[-5]", "out of range"]),
    "timestamp 9e18": (_set_timestamp("9000000000000000000"), ["interactions.timestamp", "9000000000000000000"]),
    "timestamp 1e20": (_set_timestamp("100000000000000000000"), ["interactions.timestamp", "1e+20", "out of range"]),
    "text timestamp": (_text_timestamp, ["interactions.timestamp", "1 of", "'yesterday'", "ISO-8601"]),
    "users.exposure attribute": (_add_column("users", "exposure"), ["users.exposure", "reserved"]),
    "items.split attribute": (_add_column("items", "split"), ["items.split", "reserved"]),
    "blank CAUSALREC_DATA": (_blank_data, ["CAUSALREC_DATA=' '", "blank"]),
    "one user": (_one_user, ["interactions.user_id", "at least 2 distinct user_id"]),
    "all exposure 0": (_no_exposure, ["interactions.exposure", "no training row has exposure = 1"]),
    "k = 0": (_ranking_k(0), ["ops.ranking.config.causal.k", "greater than or equal to 1", "before any step"]),
    "k = -3": (_ranking_k(-3), ["ops.ranking.config.causal.k", "got -3"]),
    "interactions/ -> . link": (_linked_interactions, ["interactions", "resolves to", "dataset directory"]),
}
"""Each defect: how to damage a good canonical copy (optionally returning ``env`` overrides and a
``run_config``), and fragments the failure must show."""


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory, small_world):
    """One good materialization of a canonical CSV dataset; returns (data dir, storage dir)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("bad-datasets")
    data_dir = write_canonical(root / "data", small_world)
    storage = root / "storage"
    mp.setenv("CAUSALREC_DATA", str(data_dir))
    mp.setenv("CAUSALREC_STORAGE", str(storage))
    result = materialize_all()
    assert result.success
    yield data_dir, storage
    mp.undo()


ORIGINAL_SEVEN = list(BAD)[:7]
"""The defects first written for the contract, also run on the batched (out-of-core) path."""

BATCH_ROWS = 128
"""Small enough that every table of the small world is validated in several batches."""


def batched_validation(run_config: dict | None) -> dict:
    """``run_config`` with every validating op set to ``BATCH_ROWS``-row batches."""
    ops = dict((run_config or {}).get("ops", {}))
    for op in (
        "users_users_contract",
        "items_items_contract",
        "interactions_interactions_contract",
        "validation_report",
    ):
        ops[op] = {"config": {"great_expectations": {"batch_rows": BATCH_ROWS}}}
    return {**(run_config or {}), "ops": ops}


@pytest.mark.parametrize(("defect", "batched"), [(d, False) for d in BAD] + [(d, True) for d in ORIGINAL_SEVEN])
def test_bad_dataset_fails_and_keeps_good_outputs(defect, batched, good_run, small_world, tmp_path, monkeypatch):
    _, storage = good_run
    before = published_files(storage)
    assert {"users.parquet", "item_embeddings.parquet", "recommendations.parquet", "causal_graph.json"} <= set(before)
    bad_dir = write_canonical(tmp_path / "bad", small_world)
    corrupt, expected = BAD[defect]
    override = corrupt(bad_dir) or {}
    monkeypatch.setenv("CAUSALREC_DATA", str(bad_dir))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(storage))
    for name, value in override.get("env", {}).items():
        monkeypatch.setenv(name, value)

    run_config = batched_validation(override.get("run_config")) if batched else override.get("run_config")
    result = materialize_all(run_config, raise_on_error=False)

    assert not result.success
    message = failure_messages(result)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in failure messages:\n{message}"
    assert published_files(storage) == before
