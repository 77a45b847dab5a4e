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
hash shards (the ranking stage's ``shards``) gives the same lists as ranking them together.

Where the sources together would cover most of the items (a small catalogue), every unseen
item is a candidate and the top-K lists are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import polars as pl

from causalrec_toolkit.rankers import PairScorer, ScoringRanker, StreamingTopK, restricted, scores_of, unseen_pairs
from causalrec_toolkit.tables import mix, stable_hash, train_rows
from causalrec_toolkit.variables import unit_rows

__all__ = [
    "EXACT_ITEMS",
    "CandidateRanker",
    "CandidateSettings",
    "ItemIndex",
    "best_items",
    "candidate_pairs",
    "nearest_items",
    "neighbour_items",
    "random_items",
    "sampled_scores",
]

class CandidateSettings(Protocol):
    """How many candidates per user each source gives (the plugin API's ``CandidateSettings``)."""

    k: int
    nearest_candidates: int
    neighbour_candidates: int
    prior_candidates: int
    explore_candidates: int
    sampled_users: int
    candidate_seed: int

    @property
    def per_user(self) -> int: ...


def matrix(frame: pl.DataFrame) -> np.ndarray:
    """The ``embedding`` column as unit float32 rows (``variables.unit_rows``)."""
    return unit_rows(frame).astype(np.float32)


def no_pairs(users: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(schema={"user_id": users.schema["user_id"], "item_id": items.schema["item_id"]})


EXACT_ITEMS = 50_000  # up to this many items usearch's exact (SIMD brute-force) search is as fast as its graph


@dataclass
class ItemIndex:
    """The unit item vectors, searched by inner product with usearch: exactly up to
    ``EXACT_ITEMS`` items, through its HNSW graph past that (built on one thread, so the same
    graph in every process; built on first use in each process, not pickled)."""

    item_ids: pl.Series
    vectors: np.ndarray  # unit float32 rows
    _graph: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, item_embeddings: pl.DataFrame) -> ItemIndex:
        return cls(item_embeddings["item_id"], matrix(item_embeddings))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_graph": None}

    def nearest(self, taste: pl.DataFrame, count: int) -> pl.DataFrame:
        """``user_id, item_id``: each user's (of ``taste``: ``user_id, embedding``) ``count``
        items of largest inner product with their taste."""
        from usearch.index import Index, MetricKind, search

        empty = pl.DataFrame(schema={"user_id": taste.schema["user_id"], "item_id": self.item_ids.dtype})
        if count == 0 or taste.is_empty() or not len(self.vectors):
            return empty
        queries, count = matrix(taste), min(count, len(self.vectors))
        if len(self.vectors) <= EXACT_ITEMS:
            found = search(self.vectors, queries, count, MetricKind.IP, exact=True)
        else:
            if self._graph is None:
                self._graph = Index(ndim=self.vectors.shape[1], metric=MetricKind.IP, dtype="f32")
                self._graph.add(np.arange(len(self.vectors), dtype=np.uint64), self.vectors, threads=1)
            found = self._graph.search(queries, count)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(taste.height, -1)
        rows, cols = np.nonzero(keys >= 0)  # an index may return fewer than asked
        return pl.DataFrame(
            {"user_id": taste["user_id"].gather(rows), "item_id": self.item_ids.gather(keys[rows, cols])}
        )


def nearest_items(taste: pl.DataFrame, item_embeddings: pl.DataFrame, count: int) -> pl.DataFrame:
    """``user_id, item_id``: each user's ``count`` items of largest inner product with their
    taste (``ItemIndex``)."""
    if item_embeddings.is_empty():
        return no_pairs(taste, item_embeddings)
    return ItemIndex.of(item_embeddings).nearest(taste, count)


def sampled_scores(
    score: PairScorer, interactions: pl.DataFrame, items: pl.DataFrame, sample: int, seed: int
) -> pl.DataFrame:
    """``user_id, item_id, score`` for a random sample of ``sample`` of the log's users x
    every item (drawn from the log, so the same for any subset of users being ranked)."""
    logged = train_rows(interactions).select("user_id").unique().sort("user_id")
    chosen = logged.sample(n=min(sample, logged.height), seed=seed)
    grid = chosen.join(items.select("item_id"), how="cross")
    return grid.with_columns(scores_of(restricted(score, chosen), grid).alias("score"))


def best_items(scored: pl.DataFrame, count: int, by: str | None = None) -> pl.DataFrame:
    """The ``count`` best-scoring rows (of each group ``by``); ties by item_id."""
    keys = [by] if by else []
    order = scored.sort([*keys, "score", "item_id"], descending=[False] * len(keys) + [True, False], nulls_last=True)
    return order.group_by(by, maintain_order=True).head(count) if by else order.head(count)


def neighbour_items(
    taste: pl.DataFrame, sampled_taste: pl.DataFrame, top: pl.DataFrame, chunk: int = 20_000
) -> pl.DataFrame:
    """``user_id, item_id``: for each user of ``taste``, the best items (``top``: ``_rep,
    item_id``, the best items of each sampled user) of the sampled user (of ``sampled_taste``)
    whose taste is nearest."""
    if sampled_taste.is_empty() or taste.is_empty() or top.is_empty():
        return pl.DataFrame(schema={"user_id": taste.schema["user_id"], "item_id": top.schema["item_id"]})
    reps, vectors = matrix(sampled_taste), matrix(taste)
    nearest = np.concatenate(
        [np.argmax(vectors[s : s + chunk] @ reps.T, axis=1) for s in range(0, len(vectors), chunk)]
    )
    pairs = pl.DataFrame({"user_id": taste["user_id"], "_rep": sampled_taste["user_id"].gather(nearest)})
    return pairs.join(top, on="_rep").select("user_id", "item_id")


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


@dataclass
class CandidateRanker(ScoringRanker):
    """Ranks each user's candidates (the four sources of the module docstring) by ``scorer``:
    what is shared by every user (the sampled users' scores, the prior items, the item index)
    is computed once, in ``fit``; a batch of users gets its candidates, minus its seen pairs,
    scored in chunks, the top ``k`` kept as it goes."""

    items: pl.DataFrame  # item_id
    tastes: pl.DataFrame  # user_id, embedding: the ranked users' tastes (empty without vectors)
    index: ItemIndex | None  # None without item vectors
    sampled_taste: pl.DataFrame  # user_id, embedding of the sampled users
    top: pl.DataFrame  # _rep, item_id: each sampled user's best items
    prior: pl.DataFrame  # item_id: the best items on average
    cfg: CandidateSettings
    k: int = 10
    chunk_pairs: int = 500_000

    @classmethod
    def fit(
        cls,
        score: PairScorer,
        users: pl.DataFrame,
        items: pl.DataFrame,
        interactions: pl.DataFrame,
        user_embeddings: pl.DataFrame,
        item_embeddings: pl.DataFrame,
        cfg: CandidateSettings,
    ) -> CandidateRanker:
        scored = sampled_scores(score, interactions, items, cfg.sampled_users, cfg.candidate_seed)
        prior = best_items(scored.group_by("item_id").agg(pl.col("score").mean()), cfg.prior_candidates)
        top = best_items(scored, cfg.neighbour_candidates, by="user_id").select(
            pl.col("user_id").alias("_rep"), "item_id"
        )
        has_vectors = "embedding" in user_embeddings.columns and "embedding" in item_embeddings.columns
        no_taste = pl.DataFrame(schema={"user_id": users.schema["user_id"], "embedding": pl.List(pl.Float32)})
        tastes, sampled, index = no_taste, no_taste, None
        if has_vectors:
            tastes = user_embeddings.join(users.select("user_id"), on="user_id", how="semi")
            sampled = user_embeddings.join(scored.select("user_id").unique(), on="user_id", how="semi").sort("user_id")
            index = ItemIndex.of(item_embeddings.join(items.select("item_id"), on="item_id", how="semi"))
        return cls(score, items.select("item_id"), tastes, index, sampled, top, prior.select("item_id"), cfg, cfg.k)

    def candidates(self, users: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """Each source's ``user_id, item_id`` pairs for ``users`` (seen pairs not removed)."""
        ids = users.select("user_id")
        parts = {"nearest": no_pairs(ids, self.items), "neighbour": no_pairs(ids, self.items)}
        if self.index is not None:
            taste = self.tastes.join(ids, on="user_id", how="semi")
            parts["nearest"] = self.index.nearest(taste, self.cfg.nearest_candidates)
            if self.cfg.neighbour_candidates:
                parts["neighbour"] = neighbour_items(taste, self.sampled_taste, self.top)
        parts["prior"] = ids.join(self.prior, how="cross")
        parts["explore"] = random_items(ids, self.items, self.cfg.explore_candidates, self.cfg.candidate_seed)
        return parts

    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        pairs = pl.concat(list(self.candidates(users).values())).unique(maintain_order=True)
        pairs = pairs.join(seen, on=["user_id", "item_id"], how="anti")
        best = StreamingTopK(self.k)
        for start in range(0, max(pairs.height, 1), self.chunk_pairs):
            best.push(self.score(pairs.slice(start, self.chunk_pairs)))
        return best.result()

    def for_users(self, users: pl.DataFrame) -> CandidateRanker:
        tastes = self.tastes.join(users.select("user_id"), on="user_id", how="semi")
        return replace(self, scorer=restricted(self.scorer, users), tastes=tastes)


def candidate_pairs(
    score: PairScorer,
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    cfg: CandidateSettings,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Each user's unseen candidates (``user_id, item_id``) and how many pairs each source
    gave; every unseen pair where the sources would cover most of a small catalogue."""
    if cfg.per_user * 2 >= items.height:
        every = unseen_pairs(users, items, interactions)
        return every, {"every unseen item": every.height}
    ranker = CandidateRanker.fit(score, users, items, interactions, user_embeddings, item_embeddings, cfg)
    parts = ranker.candidates(users)
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    pairs = (
        pl.concat(list(parts.values())).unique(maintain_order=True).join(seen, on=["user_id", "item_id"], how="anti")
    )
    return pairs, {name: part.height for name, part in parts.items()} | {"distinct unseen": pairs.height}
