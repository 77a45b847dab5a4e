"""Candidate generation: the few hundred items per user a ranker scores, instead of every item.

Scoring every unseen user x item pair costs users x items (10^11 pairs at 1M x 100k). A
ranker whose score depends on the pair's own features (taste, affinity, history) scores each
user's candidates instead, from four sources:

- ``nearest``: the items nearest the user's taste (the ``user_embeddings`` profile, the mean
  embedding of what they engaged with) by inner product of unit vectors, from an approximate
  nearest-neighbour index (usearch's HNSW) over the item embeddings;
- ``neighbour``: the items the ranker's own score rates highest for the sampled user whose
  taste is nearest the user's (a random sample of users is scored against every item): for
  uplift, the items whose effect is large for users like this one, which taste alone misses
  (what users take anyway is what they are most similar to, and it gains least);
- ``prior``: the items that score rates highest on average over the sample (users with no
  taste yet get these, and effects most users share are found here);
- ``explore``: items drawn at random per user (from a hash of the user's id and the seed),
  so that every item can be found.

What a user's candidates are depends on the model, the log and that user only (the sample is
drawn from the log's users, the random items from the user's id), so ranking the users in
hash shards (``stages/ranking/shards.py``) gives the same lists as ranking them together.

Where the sources together would cover most of the items (a small catalogue), every unseen
item is a candidate and the top-K lists are exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.candidates import unseen_pairs
from causalrec_assets.contracts import train_rows
from causalrec_assets.stages.ranking.protocol import TopKConfig
from causalrec_assets.variables import unit_rows

PairScorer = Callable[[pl.DataFrame], pl.DataFrame]


class CandidateConfig(TopKConfig):
    """How many candidates per user each source gives (see ``causalrec_assets.retrieval``)."""

    nearest_candidates: int = Field(
        default=100, ge=0, description="Items nearest the user's taste (approximate nearest neighbours)."
    )
    neighbour_candidates: int = Field(
        default=100, ge=0, description="Items the ranker's score rates highest for the sampled user of nearest taste."
    )
    prior_candidates: int = Field(
        default=50, ge=0, description="Items the ranker's score rates highest on average over the sampled users."
    )
    explore_candidates: int = Field(default=50, ge=0, description="Items drawn at random per user.")
    sampled_users: int = Field(default=200, ge=1, description="Users sampled and scored against every item.")
    candidate_seed: int = Field(default=0, description="Seed of the user sample and of the random items.")

    @property
    def per_user(self) -> int:
        return self.nearest_candidates + self.neighbour_candidates + self.prior_candidates + self.explore_candidates


def matrix(frame: pl.DataFrame) -> np.ndarray:
    """The ``embedding`` column as unit float32 rows (``variables.unit_rows``)."""
    return unit_rows(frame).astype(np.float32)


def no_pairs(users: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(schema={"user_id": users.schema["user_id"], "item_id": items.schema["item_id"]})


EXACT_ITEMS = 50_000  # up to this many items usearch's exact (SIMD brute-force) search is as fast as its graph


def nearest_items(taste: pl.DataFrame, item_embeddings: pl.DataFrame, count: int) -> pl.DataFrame:
    """``user_id, item_id``: each user's ``count`` items of largest inner product with their
    taste, from a usearch index over the unit item vectors: searched exactly up to
    ``EXACT_ITEMS`` items, through its HNSW graph (built on one thread, so the same graph in
    every process) past that."""
    from usearch.index import Index, MetricKind, search

    if count == 0 or taste.is_empty() or item_embeddings.is_empty():
        return no_pairs(taste, item_embeddings)
    items, queries, count = matrix(item_embeddings), matrix(taste), min(count, item_embeddings.height)
    if len(items) <= EXACT_ITEMS:
        found = search(items, queries, count, MetricKind.IP, exact=True)
    else:
        index = Index(ndim=items.shape[1], metric=MetricKind.IP, dtype="f32")
        index.add(np.arange(len(items), dtype=np.uint64), items, threads=1)
        found = index.search(queries, count)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(taste.height, -1)
    rows, cols = np.nonzero(keys >= 0)  # an index may return fewer than asked
    return pl.DataFrame(
        {"user_id": taste["user_id"].gather(rows), "item_id": item_embeddings["item_id"].gather(keys[rows, cols])}
    )


def sampled_scores(
    score: PairScorer, interactions: pl.DataFrame, items: pl.DataFrame, sample: int, seed: int
) -> pl.DataFrame:
    """``user_id, item_id, score`` for a random sample of ``sample`` of the log's users x
    every item (drawn from the log, so the same for any subset of users being ranked)."""
    logged = train_rows(interactions).select("user_id").unique().sort("user_id")
    chosen = logged.sample(n=min(sample, logged.height), seed=seed)
    grid = chosen.join(items.select("item_id"), how="cross")
    return grid.with_columns(score(grid)["score"].cast(pl.Float64).fill_nan(None).alias("score"))


def best_items(scored: pl.DataFrame, count: int, by: str | None = None) -> pl.DataFrame:
    """The ``count`` best-scoring rows (of each group ``by``); ties by item_id."""
    keys = [by] if by else []
    order = scored.sort([*keys, "score", "item_id"], descending=[False] * len(keys) + [True, False], nulls_last=True)
    return order.group_by(by, maintain_order=True).head(count) if by else order.head(count)


def neighbour_items(
    taste: pl.DataFrame, sampled_taste: pl.DataFrame, scored: pl.DataFrame, count: int, chunk: int = 20_000
) -> pl.DataFrame:
    """``user_id, item_id``: for each user of ``taste``, the ``count`` best items (in
    ``scored``) of the sampled user (of ``sampled_taste``) whose taste is nearest."""
    if count == 0 or sampled_taste.is_empty() or taste.is_empty():
        return no_pairs(taste, scored)
    reps, vectors = matrix(sampled_taste), matrix(taste)
    nearest = np.concatenate(
        [np.argmax(vectors[s : s + chunk] @ reps.T, axis=1) for s in range(0, len(vectors), chunk)]
    )
    pairs = pl.DataFrame({"user_id": taste["user_id"], "_rep": sampled_taste["user_id"].gather(nearest)})
    top = best_items(scored, count, by="user_id").select(pl.col("user_id").alias("_rep"), "item_id")
    return pairs.join(top, on="_rep").select("user_id", "item_id")


def stable_hash(values: pl.Series, salt: int = 0) -> np.ndarray:
    """A 64-bit hash of each value's text (md5: the same in every process, version and machine)."""
    digests = [hashlib.md5(f"{salt}:{v}".encode()).digest()[:8] for v in values.to_list()]
    return np.frombuffer(b"".join(digests), dtype=np.uint64).copy() if digests else np.zeros(0, dtype=np.uint64)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit integers from any 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def random_items(users: pl.DataFrame, items: pl.DataFrame, count: int, seed: int) -> pl.DataFrame:
    """``user_id, item_id``: ``count`` items per user drawn at random from a hash of the
    user's id, the draw's number and ``seed`` (with replacement; repeats merge)."""
    if count == 0 or items.is_empty() or users.is_empty():
        return no_pairs(users, items)
    base = np.repeat(stable_hash(users["user_id"], seed), count)
    draw = np.tile(np.arange(1, count + 1, dtype=np.uint64), users.height) * np.uint64(0x9E3779B97F4A7C15)
    picks = (mix(base + draw) % np.uint64(items.height)).astype(np.int64)
    rows = np.repeat(np.arange(users.height), count)
    return pl.DataFrame({"user_id": users["user_id"].gather(rows), "item_id": items["item_id"].gather(picks)})


def candidate_pairs(
    score: PairScorer,
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    cfg: CandidateConfig,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Each user's unseen candidates (``user_id, item_id``) and how many pairs each source
    gave; every unseen pair where the sources would cover most of a small catalogue."""
    if cfg.per_user * 2 >= items.height:
        every = unseen_pairs(users, items, interactions)
        return every, {"every unseen item": every.height}
    user_ids, item_ids = users.select("user_id"), items.select("item_id")
    has_vectors = "embedding" in user_embeddings.columns and "embedding" in item_embeddings.columns
    scored = sampled_scores(score, interactions, items, cfg.sampled_users, cfg.candidate_seed)
    prior = best_items(scored.group_by("item_id").agg(pl.col("score").mean()), cfg.prior_candidates)
    parts = {"nearest": no_pairs(users, items), "neighbour": no_pairs(users, items)}
    if has_vectors:
        taste = user_embeddings.join(user_ids, on="user_id", how="semi")
        sampled_taste = user_embeddings.join(scored.select("user_id").unique(), on="user_id", how="semi").sort(
            "user_id"
        )
        vectors = item_embeddings.join(item_ids, on="item_id", how="semi")
        parts["nearest"] = nearest_items(taste, vectors, cfg.nearest_candidates)
        parts["neighbour"] = neighbour_items(taste, sampled_taste, scored, cfg.neighbour_candidates)
    parts["prior"] = user_ids.join(prior.select("item_id"), how="cross")
    parts["explore"] = random_items(user_ids, item_ids, cfg.explore_candidates, cfg.candidate_seed)
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    pairs = (
        pl.concat(list(parts.values())).unique(maintain_order=True).join(seen, on=["user_id", "item_id"], how="anti")
    )
    return pairs, {name: part.height for name, part in parts.items()} | {"distinct unseen": pairs.height}
