"""Sharded ranking on a multi-worker Dask cluster gives the in-process recommendations.

The pipeline runs once (Dagster's CLI, in process) on a simulated world whose uplift is
personal, with more items than the candidate sources cover (so candidates are generated,
not every unseen item); then ``rank_shards_job`` ranks each user hash shard as its own
partition, its step on a local Dask cluster of two worker processes (Dagster's
``dask_executor``), and the shards together are the published recommendations (with the same
BLAS and OpenMP thread settings in both: see ``stages/ranking/shards.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from causalrec_assets.stages.ranking.shards import read_shards, user_shard

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
WORLD = {"scenario": "taste", "seed": 5, "n_users": 160, "n_items": 200, "pairs_per_user": 25}
# fewer candidates than the default, so that 200 items are a catalogue the sources do not cover
CANDIDATES = {"nearest_candidates": 20, "neighbour_candidates": 20, "prior_candidates": 10, "explore_candidates": 10}
RANKING = {"config": {"plugin": "causal", "causal": CANDIDATES}}
SHARDS = 3

RUN_SHARDS = """
import json
import sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

repository = ReconstructableRepository.for_module("causalrec_assets.definitions", "defs")
job = repository.get_reconstructable_job("rank_shards_job")
with dg.DagsterInstance.get() as instance:
    run_config = json.loads(sys.argv[1])
    for key in sys.argv[2:]:
        with dg.execute_job(job, instance, run_config=run_config, tags={"dagster/partition": key}) as result:
            assert result.success, key
            print(key, result.dagster_run.run_config.get("execution", "the job's executor"), flush=True)
"""


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_user_shards_split_every_user_once_and_stably() -> None:
    users = pl.Series([f"u{k:05d}" for k in range(2000)])
    shards = user_shard(users, 8)
    assert shards.min() == 0 and shards.max() == 7
    assert shards.value_counts()["count"].min() > 2000 / 8 * 0.7  # about even
    assert user_shard(users.reverse(), 8).reverse().equals(shards)  # a user's shard is its own


def test_sharded_ranking_on_dask_equals_in_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CAUSALREC_STORAGE": str(tmp_path / "storage"),
        "CAUSALREC_EXECUTOR": "in_process",
        "CAUSALREC_RANK_SHARDS": str(SHARDS),
        # the thread settings Dask's nanny gives its workers, for the in-process run too: boosted models fitted
        # under other BLAS / OpenMP thread counts differ in floating-point reductions, and so in their splits
        **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"),
    }
    config = {"ops": {"ingest": {"config": {"plugin": "simulator", "simulator": WORLD}}, "ranking": RANKING}}
    materialize = [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", "*"]
    whole = run([*materialize, "--config-json", json.dumps(config)], env)
    assert "candidate pairs (nearest:" in whole.stderr  # candidates were generated, not every unseen item
    env |= {"CAUSALREC_EXECUTOR": "dask", "CAUSALREC_DASK_WORKERS": "2"}
    keys = [str(k) for k in range(SHARDS)]
    sharded = run([sys.executable, "-c", RUN_SHARDS, json.dumps({"ops": {"rank_shard": RANKING}}), *keys], env)
    assert "dask" in sharded.stderr.lower()  # the steps ran on the Dask cluster's workers
    in_process = pl.read_parquet(tmp_path / "storage" / "recommendations.parquet")
    shards = read_shards(tmp_path / "storage" / "recommendation_shards")
    assert shards["user_id"].n_unique() == in_process["user_id"].n_unique() == WORLD["n_users"]
    ordered = ["user_id", "rank"]
    left, right = in_process.sort(ordered), shards.sort(ordered)
    assert left.select("user_id", "item_id", "rank").equals(right.select("user_id", "item_id", "rank"))
    assert (left["score"] - right["score"]).abs().max() < 1e-9
