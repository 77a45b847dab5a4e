"""The one place that reads the environment: defaults, and a bad value named before any run."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalrec_resources.settings import CausalrecSettings


def test_defaults_without_any_variable() -> None:
    settings = CausalrecSettings.from_env({})
    assert (settings.data, settings.executor, settings.refutation, settings.embed_shards) == (
        "",
        "multiprocess",
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
