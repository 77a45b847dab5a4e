"""The whole pipeline with its user shards on a Dask LocalCluster (two workers, 4 GB each)
gives the in-process run's headline estimate and interval (to floating-point tolerance) and
the very same recommendations, every output published through write-audit-publish.

Both runs are Dagster's CLI on a simulated world whose uplift is personal, with more items
than the candidate sources cover (so candidates are generated, not every unseen item). Only
fitted models travel to the workers, which predict and sum: the results do not depend on
where a shard ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from causalrec_resources.compute import user_shards

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
WORLD = {"scenario": "taste", "seed": 5, "n_users": 160, "n_items": 200, "pairs_per_user": 25}
# fewer candidates than the default, so that 200 items are a catalogue the sources do not cover
CANDIDATES = {"nearest_candidates": 20, "neighbour_candidates": 20, "prior_candidates": 10, "explore_candidates": 10}
CONFIG = {
    "ops": {
        "ingest": {"config": {"plugin": "simulator", "simulator": WORLD}},
        "ranking": {"config": {"plugin": "causal", "causal": CANDIDATES}},
    }
}


def materialize(tmp_path: Path, name: str, compute: dict[str, str]) -> tuple[Path, str]:
    home = tmp_path / name
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CAUSALREC_STORAGE": str(home / "storage"),
        "CAUSALREC_EXECUTOR": "in_process",
        "CAUSALREC_SHARDS": "3",
        **compute,
    }
    command = [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", "*"]
    done = subprocess.run(
        [*command, "--config-json", json.dumps(CONFIG)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return home / "storage", done.stderr


def test_user_shards_split_every_user_once_and_stably() -> None:
    users = pl.Series([f"u{k:05d}" for k in range(2000)])
    shards = user_shards(users, 8)
    assert shards.min() == 0 and shards.max() == 7
    assert shards.value_counts()["count"].min() > 2000 / 8 * 0.7  # about even
    assert user_shards(users.reverse(), 8).reverse().equals(shards)  # a user's shard is its own


@pytest.mark.slow
def test_the_pipeline_on_a_dask_cluster_equals_the_in_process_run(tmp_path: Path) -> None:
    local, local_log = materialize(tmp_path, "local", {"CAUSALREC_COMPUTE": "local"})
    dask, dask_log = materialize(
        tmp_path, "dask", {"CAUSALREC_COMPUTE": "dask", "CAUSALREC_DASK_WORKERS": "2", "CAUSALREC_DASK_MEMORY": "4GB"}
    )
    assert "each user's candidates" in local_log  # candidates were generated, not every unseen item
    assert "3 user shards on Dask (a LocalCluster)" in dask_log and "3 user shards on Dask" not in local_log
    head = ["estimate", "ci_low", "ci_high"]
    a, b = (pl.read_parquet(s / "treatment_effects.parquet") for s in (local, dask))
    assert a["estimator"].equals(b["estimator"])
    assert (a.select(head).to_numpy() - b.select(head).to_numpy()).__abs__().max() < 1e-9
    recs = [pl.read_parquet(s / "recommendations.parquet") for s in (local, dask)]
    assert recs[0]["user_id"].n_unique() == WORLD["n_users"]
    assert recs[0].equals(recs[1])
    assert pl.read_parquet(local / "test_scores.parquet").equals(pl.read_parquet(dask / "test_scores.parquet"))
