"""Sharded ranking: users split into hash partitions, so that a distributed executor
(``dask_executor`` on a cluster, ``k8s_job_executor``) ranks them on many workers.

Each partition of ``rank_shards_job`` reads the pipeline's stored assets, fits the ranking
plugin on the whole log (the same inputs and seeds: the same model in every shard) and
recommends for its own users only, writing ``<storage>/recommendation_shards/<shard>.parquet``.
The shards together are the in-process ``recommendations``, user for user: what a shard
recommends to a user depends on nothing but the model and that user (candidates included:
see ``causalrec_assets.retrieval``), on workers with the same BLAS and OpenMP thread
settings: under other thread counts the boosted models' floating-point sums differ, and so can
their splits. Fitting is capped in rows (``nuisance_rows``), so what grows with users, the
scoring, is what the shards divide.
"""

import dataclasses
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from causalrec_assets.encoding import VariableEncoding
from causalrec_assets.retrieval import stable_hash
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.ranking.inputs import ranking_inputs
from causalrec_assets.stages.ranking.protocol import RankingInputs, RankingPlugin
from causalrec_resources.settings import current_settings
from causalrec_resources.storage import storage_dir

RankingStageConfig = stage_config_class("ranking")
RANK_SHARDS = current_settings().rank_shards
rank_shard_partitions = dg.StaticPartitionsDefinition([str(i) for i in range(RANK_SHARDS)])
STORED = ("interactions", "user_embeddings", "variable_encoding", "causal_variables", "bayesian_network")
SHARD_FOLDER = "recommendation_shards"


def user_shard(user_ids: pl.Series, shards: int) -> pl.Series:
    """Which of ``shards`` partitions each user belongs to: a hash of the id's text (stable
    across processes, versions and machines, unlike Python's or Polars' own hash)."""
    return pl.Series("shard", (stable_hash(user_ids) % np.uint64(shards)).astype(np.int64))


def shard_inputs(inputs: RankingInputs, shard: int, shards: int) -> RankingInputs:
    """The ranking inputs with only the users of ``shard`` to recommend to; the log, the
    encodings and the graph, and so the fitted model, stay whole."""
    mine = inputs.users.filter(user_shard(inputs.users["user_id"], shards) == shard)
    return dataclasses.replace(inputs, users=mine)


def write_shard(frame: pl.DataFrame, folder: Path, shard: str) -> Path:
    """``<folder>/<shard>.parquet``, written through a temporary file and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{shard}.parquet"
    tmp = folder / f".{shard}.{uuid.uuid4().hex}.tmp"
    frame.write_parquet(tmp)
    os.replace(tmp, path)
    return path


def _stored(name: str) -> dg.In:
    return dg.In(metadata={"asset": name}, input_manager_key="stored_asset_loader", description=f"The stored {name}.")


@dg.op(ins={name: _stored(name) for name in (*STORED, "treatment_effects")}, out=dg.Out(dg.Nothing))
def rank_shard(
    context: dg.OpExecutionContext,
    config: RankingStageConfig,  # type: ignore[valid-type]
    interactions: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    variable_encoding: VariableEncoding,
    causal_variables: pl.DataFrame,
    bayesian_network: pl.DataFrame,
    treatment_effects: pl.DataFrame,
) -> None:
    """Recommend for the users of one hash partition (see the module docstring)."""
    started = time.perf_counter()
    shard = int(context.partition_key)
    plugin = plugin_from_config(RankingPlugin, config, context.log)
    inputs = ranking_inputs(
        interactions, user_embeddings, variable_encoding, causal_variables, bayesian_network, treatment_effects
    )
    mine = shard_inputs(inputs, shard, RANK_SHARDS)
    out = plugin.rank(mine, plugin_context(context))
    path = write_shard(out.recommendations, storage_dir() / SHARD_FOLDER, context.partition_key)
    seconds = time.perf_counter() - started
    context.log.info(
        "shard %d/%d: %d of %d users, %d recommendations in %.1f s -> %s",
        shard,
        RANK_SHARDS,
        mine.users.height,
        inputs.users.height,
        out.recommendations.height,
        seconds,
        path,
    )
    context.add_output_metadata({"users": mine.users.height, "seconds": round(seconds, 2), "path": str(path)})


@dg.job(
    partitions_def=rank_shard_partitions,
    description="Rank the users of one hash shard per partition, from the stored assets (a backfill spreads them).",
)
def rank_shards_job():
    rank_shard()


def read_shards(folder: Path | None = None) -> pl.DataFrame:
    """Every shard's recommendations, as one table."""
    folder = folder or storage_dir() / SHARD_FOLDER
    return pl.concat([pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])
