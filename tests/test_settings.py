"""The one place that reads the environment: defaults, and a bad value named before any run."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalrec_resources.settings import CausalrecSettings


def test_defaults_without_any_variable() -> None:
    settings = CausalrecSettings.from_env({})
    assert (settings.data, settings.executor, settings.refutation, settings.embed_shards) == (
        "",
        "auto",
        "warn",
        8,
    )
    assert settings.cache_dir == Path.home() / ".cache" / "causalrec"
    assert settings.storage_dir == Path.home() / ".dagster" / "causalrec_storage"


def test_values_are_read_trimmed_and_paths_resolved(tmp_path: Path) -> None:
    env = {
        "CAUSALREC_DATA": f"  {tmp_path}  ",
        "CAUSALREC_EXECUTOR": "Dask",
        "CAUSALREC_EMBED_SHARDS": "3",
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    settings = CausalrecSettings.from_env(env)
    assert settings.data == str(tmp_path) and settings.executor == "dask" and settings.embed_shards == 3
    assert settings.storage_dir == tmp_path / "home" / "causalrec_storage"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CAUSALREC_EXECUTOR", "spark", "CAUSALREC_EXECUTOR='spark' is not one of"),
        ("CAUSALREC_REFUTATION", "loud", "CAUSALREC_REFUTATION='loud' is not one of"),
        ("CAUSALREC_PARTITIONS", "hourly", "CAUSALREC_PARTITIONS='hourly' is not one of"),
        ("CAUSALREC_EMBED_SHARDS", "0", "CAUSALREC_EMBED_SHARDS='0' must be at least 1"),
        ("CAUSALREC_DASK_WORKERS", "two", "CAUSALREC_DASK_WORKERS='two' is not a whole number"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CausalrecSettings.from_env({variable: value})


@pytest.mark.parametrize("variable", ["CAUSALREC_DATA", "CAUSALREC_STORAGE", "CAUSALREC_CACHE"])
def test_a_blank_but_set_place_is_refused_not_taken_for_the_default(variable: str) -> None:
    with pytest.raises(ValueError, match=rf"{variable}=' ' is blank"):
        CausalrecSettings.from_env({variable: " "})
    assert CausalrecSettings.from_env({variable: ""}) == CausalrecSettings.from_env({})


def test_the_text_cap_is_read_and_checked() -> None:
    assert CausalrecSettings.from_env({}).max_text_chars == 10_000
    assert CausalrecSettings.from_env({"CAUSALREC_MAX_TEXT_CHARS": "500"}).max_text_chars == 500
    with pytest.raises(ValueError, match="CAUSALREC_MAX_TEXT_CHARS='0' must be at least 1"):
        CausalrecSettings.from_env({"CAUSALREC_MAX_TEXT_CHARS": "0"})


def test_auto_executor_runs_small_datasets_in_one_process(tmp_path) -> None:
    from causalrec_resources.executors import SMALL_DATASET_BYTES, auto_executor_name

    assert auto_executor_name(CausalrecSettings.from_env({})) == "in_process"  # the simulator
    (tmp_path / "interactions.parquet").write_bytes(b"x" * 1000)
    small = CausalrecSettings.from_env({"CAUSALREC_DATA": str(tmp_path)})
    assert auto_executor_name(small) == "in_process"
    with open(tmp_path / "interactions.parquet", "ab") as big:
        big.truncate(SMALL_DATASET_BYTES + 1)  # sparse: no real bytes written
    assert auto_executor_name(small) == "multiprocess"
