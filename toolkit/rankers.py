"""Fitted rankers: the ``Ranker`` base every ranking plugin's model implements, which pairs a
ranker scores, and how scores become a top-K list (every unseen item scored in chunks, or
exactly per user profile)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace

import polars as pl

from causalrec_toolkit.tables import test_rows, train_rows

__all__ = [
    "EXPLANATION_COLUMNS",
    "PairScorer",
    "ProfileRanker",
    "Ranker",
    "ScoredRanker",
    "ScoringRanker",
    "StreamingTopK",
    "profile_top_k",
    "restricted",
    "scores_of",
    "test_pairs",
    "top_k",
    "unseen_pairs",
]

PairScorer = Callable[[pl.DataFrame], pl.DataFrame]


EXPLANATION_COLUMNS = {"user_id": None, "item_id": None, "modifier": pl.Utf8, "contribution": pl.Float64}


class Ranker(ABC):
    """A fitted ranking model (since 1.4): what ``RankingPlugin.fit`` returns.

    The stage hands it the users to rank in batches, each with the training pairs of those
    users (``seen``), and keeps each batch's lists; on a cluster it sends each user shard the
    part of the model those users need (``for_users``), so a worker's memory follows its shard.
    It must be picklable and must not change once fitted: a batch's lists depend on the model
    and that batch's users only, so batches and shards give the lists one call would."""

    k: int = 10

    @abstractmethod
    def score(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """``user_id, item_id, score`` for each of ``pairs`` (``user_id, item_id``), in order;
        pairs of users or items the model has not seen get a finite score too."""

    @abstractmethod
    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        """``user_id, item_id, rank, score``: the ``k`` best items of each of ``users`` that are
        not among its ``seen`` pairs (the training pairs of exactly these users)."""

    def for_users(self, users: pl.DataFrame) -> Ranker:
        """The part of the model that ``users`` need (what one shard is sent); itself by default."""
        return self

    def explain(self, recommendations: pl.DataFrame) -> pl.DataFrame | None:
        """Since plugin API 1.6: why each of ``recommendations`` (``user_id, item_id, rank,
        score``) scored as it did: ``user_id, item_id, modifier, contribution`` rows, a few per
        pair, largest first (``EXPLANATION_COLUMNS``). None (the default): this ranker cannot say."""
        return None


EXPLANATION_COLUMNS = {"user_id": None, "item_id": None, "modifier": pl.Utf8, "contribution": pl.Float64}


def unseen_pairs(users: pl.DataFrame, items: pl.DataFrame, interactions: pl.DataFrame) -> pl.DataFrame:
    """Every (user, item) pair absent from the user's training log."""
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    every = users.select("user_id").join(items.select("item_id"), how="cross")
    return every.join(seen, on=["user_id", "item_id"], how="anti")


def test_pairs(interactions: pl.DataFrame) -> pl.DataFrame:
    return test_rows(interactions).select("user_id", "item_id")


def top_k(scored: pl.DataFrame, k: int) -> pl.DataFrame:
    """``user_id, item_id, rank, score``: each user's k best pairs (ties broken by item_id,
    missing scores last)."""
    return (
        scored.with_columns(pl.col("score").cast(pl.Float64).fill_nan(None))
        .sort(["user_id", "score", "item_id"], descending=[False, True, False], nulls_last=True)
        .group_by("user_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int32).alias("rank"))
        .select("user_id", "item_id", "rank", "score")
    )


class StreamingTopK:
    """Each user's ``k`` best pairs among every scored chunk pushed so far: the same as
    ``top_k`` of all the chunks together (ties broken by item_id, missing scores last), in
    memory of ``users x k`` plus one chunk."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._best: pl.DataFrame | None = None

    def push(self, scored: pl.DataFrame) -> None:
        frame = scored.select("user_id", "item_id", pl.col("score").cast(pl.Float64))
        merged = frame if self._best is None else pl.concat([self._best.drop("rank"), frame])
        self._best = top_k(merged, self.k)

    def result(self) -> pl.DataFrame:
        if self._best is None:
            raise ValueError("push at least one scored frame (an empty one gives the columns)")
        return self._best


def profile_top_k(
    score: PairScorer,
    user_profiles: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    k: int,
) -> pl.DataFrame:
    """Exactly ``top_k(score(unseen_pairs(...)), k)`` for a score that depends on a pair only
    through its user's profile (``user_profiles``: ``user_id, profile``) and its item: see
    ``ProfileRanker``."""
    seen = train_rows(interactions).select("user_id", "item_id").unique()
    return ProfileRanker.fit(score, user_profiles, items, k).recommend(user_profiles.select("user_id"), seen)


def scores_of(score: PairScorer, pairs: pl.DataFrame) -> pl.Series:
    """``score``'s column for ``pairs`` as floats, NaN as missing."""
    return score(pairs.select("user_id", "item_id"))["score"].cast(pl.Float64).fill_nan(None)


def restricted(score: PairScorer, users: pl.DataFrame) -> PairScorer:
    """The part of a pair scorer that ``users`` need, where it can say (``for_users``)."""
    for_users = getattr(score, "for_users", None)
    return for_users(users) if for_users is not None else score


@dataclass
class ScoringRanker(Ranker):
    """A ranker whose scores are a pair scorer's (``scorer``: pairs -> ``user_id, item_id, score``)."""

    scorer: PairScorer

    def score(self, pairs: pl.DataFrame) -> pl.DataFrame:
        return pairs.select("user_id", "item_id").with_columns(scores_of(self.scorer, pairs).alias("score"))

    def explain(self, recommendations: pl.DataFrame) -> pl.DataFrame | None:
        """The scorer's explanation where it has one (an ``explain`` method, as ``Ranker.explain``)."""
        explain = getattr(self.scorer, "explain", None)
        return explain(recommendations) if callable(explain) else None


@dataclass
class ScoredRanker(ScoringRanker):
    """Every catalogue item a user has not seen is a candidate, scored by ``scorer`` a chunk
    of users at a time (at most ``chunk_pairs`` pairs), the top ``k`` kept as it goes."""

    items: pl.DataFrame  # item_id
    k: int = 10
    chunk_pairs: int = 500_000

    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        step = max(1, self.chunk_pairs // max(self.items.height, 1))
        best = StreamingTopK(self.k)
        ids = users.select("user_id")
        for start in range(0, max(ids.height, 1), step):
            part = ids.slice(start, step)
            pairs = part.join(self.items.select("item_id"), how="cross").join(
                seen, on=["user_id", "item_id"], how="anti"
            )
            best.push(self.score(pairs))
        return best.result()

    def for_users(self, users: pl.DataFrame) -> ScoredRanker:
        return replace(self, scorer=restricted(self.scorer, users))


@dataclass
class ProfileRanker(ScoringRanker):
    """Exact top-K lists for a score that depends on a pair only through its user's profile
    (``profiles``: ``user_id, profile``) and its item: each profile's items are scored once,
    through one user of that profile (``fit``); a user then takes the first ``k`` items of its
    profile's ranking it has not seen. The cost grows with profiles x items plus users x k plus
    logged pairs, not users x items. Users without a profile share the first one's."""

    profiles: pl.DataFrame  # user_id, profile
    ranked: pl.DataFrame  # profile, item_id, score, _position
    k: int = 10

    @classmethod
    def fit(cls, score: PairScorer, profiles: pl.DataFrame, items: pl.DataFrame, k: int) -> ProfileRanker:
        reps = profiles.group_by("profile", maintain_order=True).agg(pl.col("user_id").first())
        grid = reps.join(items.select("item_id"), how="cross")
        scored = grid.with_columns(scores_of(score, grid).alias("score"))
        ranked = scored.sort(["profile", "score", "item_id"], descending=[False, True, False], nulls_last=True)
        ranked = ranked.select(
            "profile", "item_id", "score", pl.int_range(pl.len()).over("profile").cast(pl.Int64).alias("_position")
        )
        return cls(score, profiles, ranked, k)

    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        # a user needs at most k + (what it has seen) items of its profile's ranking: users x k + their log
        counts = seen.group_by("user_id").len("_seen")
        first = self.profiles["profile"][0] if self.profiles.height else 0
        wanted = (
            users.select("user_id")
            .join(self.profiles, on="user_id", how="left")
            .join(counts, on="user_id", how="left")
            .select(
                "user_id",
                pl.col("profile").fill_null(first),
                pl.int_ranges(0, pl.col("_seen").fill_null(0) + self.k).alias("_position"),
            )
            .explode("_position")
        )
        pairs = wanted.join(self.ranked, on=["profile", "_position"])
        return top_k(pairs.join(seen, on=["user_id", "item_id"], how="anti"), self.k)

    def for_users(self, users: pl.DataFrame) -> ProfileRanker:
        mine = self.profiles.join(users.select("user_id"), on="user_id", how="semi")
        return replace(self, scorer=restricted(self.scorer, users), profiles=mine)
