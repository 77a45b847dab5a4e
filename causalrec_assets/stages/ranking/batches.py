"""Recommendations in bounded memory: a fitted ``Ranker`` asked for its lists one batch of
users at a time, the batches of each user shard run where the ``compute`` resource says.

What a user's list is depends on the fitted model and that user only, so the lists are the
same whatever the batches and shards; memory depends on the batch (``batch_users`` users x
their candidates), not on users x candidates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import polars as pl

from causalrec_assets.contracts import train_rows
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.protocol import Ranker, RankingInputs, RankingOutput
from causalrec_resources.compute import ComputeResource, local_compute, split_by_user, user_shards
from causalrec_toolkit.rankers import test_pairs

BATCH_USERS = 4096  # users whose candidates are scored together
SCORE_ROWS = 500_000  # pairs scored together (test pairs)


def batches(users: pl.DataFrame, seen: pl.DataFrame, size: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """``(users, their seen pairs)`` in consecutive batches of ``size`` users."""
    for start in range(0, users.height, size):
        part = users.slice(start, size)
        yield part, seen.join(part.select("user_id"), on="user_id", how="semi")


def recommend_shard(part: tuple[Ranker, pl.DataFrame, pl.DataFrame], batch_users: int) -> pl.DataFrame:
    """One shard's lists: its users ranked batch by batch (what a worker runs)."""
    ranker, users, seen = part
    # each batch by the part of the model its users need: lookups in a batch's state, not the shard's
    lists = [ranker.for_users(b).recommend(b, s) for b, s in batches(users, seen, batch_users)]
    return pl.concat(lists) if lists else ranker.recommend(users, seen)


def shard_parts(
    ranker: Ranker, users: pl.DataFrame, seen: pl.DataFrame, shards: int
) -> Iterator[tuple[Ranker, pl.DataFrame, pl.DataFrame]]:
    """Per user shard: the part of the model its users need, its users, their seen pairs."""
    shard_of = users.select("user_id").with_columns(user_shards(users["user_id"], shards))
    user_parts = split_by_user(users.select("user_id"), shard_of, shards)
    seen_parts = split_by_user(seen, shard_of, shards)
    for mine, their_seen in zip(user_parts, seen_parts, strict=True):
        if mine.height:
            yield ranker.for_users(mine), mine, their_seen


def recommend_all(
    ranker: Ranker,
    users: pl.DataFrame,
    interactions: pl.DataFrame,
    compute: ComputeResource | None = None,
    batch_users: int = BATCH_USERS,
    log: Any = None,
) -> pl.DataFrame:
    """Every user's list, shard by shard (on ``compute``), batch by batch within a shard; in
    the order of ``users``."""
    compute = compute or local_compute()
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    shards = compute.shard_count
    started, done, lists = time.perf_counter(), 0, []
    for shard_lists in compute.map(recommend_shard, shard_parts(ranker, users, seen, shards), batch_users):
        lists.append(shard_lists)
        done += shard_lists["user_id"].n_unique()
        if log is not None:
            log.info(
                "ranked %d of %d users (%d shards, %.0f s)", done, users.height, shards, time.perf_counter() - started
            )
    if not lists:
        return ranker.recommend(users.select("user_id"), seen)
    order = users.select("user_id").with_row_index("_order")
    return pl.concat(lists).join(order, on="user_id", how="left").sort("_order", "rank").drop("_order")


def score_all(ranker: Ranker, pairs: pl.DataFrame, chunk: int = SCORE_ROWS) -> pl.DataFrame:
    """``ranker.score`` over ``pairs`` in order, scored in chunks of about ``chunk`` rows of
    whole users (pairs grouped by user first), each chunk by the part of the model its users
    need: a chunk of pairs in log order would touch nearly every user, and so the whole model."""
    by_user = pairs.with_row_index("_row").sort("user_id", maintain_order=True)
    parts = [by_user.slice(s, chunk) for s in range(0, max(by_user.height, 1), chunk)]
    scored = [
        ranker.for_users(part.select("user_id").unique()).score(part.drop("_row")).with_columns(part["_row"])
        for part in parts
    ]
    return pl.concat(scored).sort("_row").drop("_row")


def rank_with(
    ranker: Ranker, inputs: RankingInputs, context: PluginContext, compute: ComputeResource | None = None
) -> RankingOutput:
    """The stage's answer from a fitted ranker: every user's list and every test pair's score."""
    recommendations = recommend_all(ranker, inputs.users, inputs.interactions, compute, log=context.log)
    return RankingOutput(recommendations, score_all(ranker, test_pairs(inputs.interactions)))
