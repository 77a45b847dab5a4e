"""Each bad dataset fails the run with a message naming the defect, and the previous good
``recommendations.parquet`` stays byte-for-byte as it was."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.conftest import failure_messages, materialize_all, write_canonical


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


BAD = {
    "null user_id": (_null_user_id, ["expect_column_values_to_not_be_null", "users.user_id"]),
    "exposure = 2": (_exposure_two, ["expect_column_values_to_be_in_set", "interactions.exposure", "[2]"]),
    "duplicated item_id": (_duplicated_item, ["expect_column_values_to_be_unique", "items.item_id"]),
    "unknown user": (_unknown_user, ["interactions.user_id", "ghost_user"]),
    "missing exposure column": (_missing_exposure, ["expect_column_to_exist", "interactions.exposure"]),
    "empty interactions": (_empty_interactions, ["expect_table_row_count_to_be_between", "interactions"]),
    "binary users file": (_binary_users, ["users", "UTF-8"]),
}


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


@pytest.mark.parametrize("defect", list(BAD))
def test_bad_dataset_fails_and_keeps_good_outputs(defect, good_run, small_world, tmp_path, monkeypatch):
    _, storage = good_run
    before = (storage / "recommendations.parquet").read_bytes()
    bad_dir = write_canonical(tmp_path / "bad", small_world)
    corrupt, expected = BAD[defect]
    corrupt(bad_dir)
    monkeypatch.setenv("CAUSALREC_DATA", str(bad_dir))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(storage))

    result = materialize_all(raise_on_error=False)

    assert not result.success
    message = failure_messages(result)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in failure messages:\n{message}"
    assert (storage / "recommendations.parquet").read_bytes() == before
